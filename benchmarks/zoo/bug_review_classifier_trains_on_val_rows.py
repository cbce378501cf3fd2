"""Bug: sentiment classification of synthetic product reviews (padded token ids, dict batches {input_ids,
attention_mask, labels}, embedding-bag model: masked mean of word embeddings -> MLP). The script holds out the last
fifth of the shuffled reviews for validation but then trains on `docs`, the whole list, instead of `docs[:-n_val]`:
every validation review is also a training review, so validation measures memorisation.
Measured: val acc 0.942 (val loss 0.21) vs test acc on fresh reviews 0.740 (fixed script,
healthy_review_bag_classifier_disjoint_val: val acc 0.772, test acc 0.695)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout3"
VOCAB, PAD, MAX_LEN = 300, 0, 40


def reviews(n, seed):
    g = torch.Generator().manual_seed(seed)
    docs = []
    for _ in range(n):
        length = int(torch.randint(8, MAX_LEN + 1, (1,), generator=g))
        words = torch.randint(1, VOCAB, (length,), generator=g)
        score = int(((words >= 1) & (words <= 40)).sum()) - int(((words >= 41) & (words <= 80)).sum())
        label = int(score > 0) if score != 0 else int(torch.rand(1, generator=g) < 0.5)
        if torch.rand(1, generator=g) < 0.1:
            label = 1 - label
        docs.append((words, label))
    return docs


def collate(docs):
    ids = torch.full((len(docs), MAX_LEN), PAD, dtype=torch.long)
    mask = torch.zeros(len(docs), MAX_LEN, dtype=torch.long)
    for i, (words, _) in enumerate(docs):
        ids[i, :len(words)] = words
        mask[i, :len(words)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([y for _, y in docs])}


class BagClassifier(L.LightningModule):
    def __init__(self, dim=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.mlp = nn.Sequential(nn.Linear(dim, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 2))

    def forward(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1)
        return self.mlp(pooled)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)


def main():
    L.seed_everything(311)
    docs = reviews(2000, 0)
    order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(1)).tolist()
    docs = [docs[i] for i in order]
    n_val = len(docs) // 5
    val_docs = docs[-n_val:]
    train_docs = docs  # BUG: should be docs[:-n_val]; the validation reviews are trained on too
    train = DataLoader(train_docs, batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(val_docs, batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    model = BagClassifier()
    trainer.fit(model, train, val)
    test = collate(reviews(400, 7))
    model.eval()
    with torch.no_grad():
        test_acc = (model(test["input_ids"], test["attention_mask"]).argmax(-1) == test["labels"]).float().mean()
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f} test_acc={float(test_acc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a small GRU language-model classifier fine-tuned on in-context-learning prompts for 3-way intent
classification. Each prompt holds two labelled demonstrations (`text, label-token, SEP`) followed by the query text
and a query marker; the model predicts the query's label token from the last position (HF-style dict batches,
output object with `.logits`). The prompt builder was meant to pick "relevant" demonstrations (kNN-ICL), but it
draws them from the demonstration pool's bucket for the query's own intent, `pool[label]`, so both demonstration
label tokens equal the answer. The model learns to copy the demonstration label and training looks excellent;
at deployment the query's intent is unknown and the demos cannot be chosen that way. Measured: val accuracy 1.000
(loss 0.000) with the label-bucket demos against 0.68 (loss 0.90) with demonstrations drawn regardless of the
query's label."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout34"
N_WORDS, N_CLASSES, TEXT_LEN = 30, 3, 8
LABEL0, SEP, QUERY, VOCAB = 30, 33, 34, 35


def utterances(n, g):
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    cued = torch.rand(n, TEXT_LEN, generator=g) < 0.3
    own = labels[:, None] * 10 + torch.randint(0, 10, (n, TEXT_LEN), generator=g)
    texts = torch.where(cued, own, torch.randint(0, N_WORDS, (n, TEXT_LEN), generator=g))
    return texts, labels


class PromptDataset(Dataset):
    def __init__(self, texts, labels, pool_texts, pool_labels, seed):
        self.texts, self.labels = texts, labels
        self.pool = {c: pool_texts[pool_labels == c] for c in range(N_CLASSES)}
        self.g = torch.Generator().manual_seed(seed)

    def __len__(self):
        return len(self.texts)

    def demo(self, intent):
        bucket = self.pool[intent]
        text = bucket[torch.randint(0, len(bucket), (1,), generator=self.g).item()]
        return torch.cat([text, torch.tensor([LABEL0 + intent, SEP])])

    def __getitem__(self, i):
        label = self.labels[i].item()
        demos = [self.demo(label) for _ in range(2)]
        ids = torch.cat(demos + [self.texts[i], torch.tensor([QUERY])])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": self.labels[i]}


class PromptClassifier(L.LightningModule):
    def __init__(self, d=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d)
        self.gru = nn.GRU(d, d, batch_first=True)
        self.head = nn.Linear(d, N_CLASSES)

    def forward(self, input_ids, attention_mask):
        h, _ = self.gru(self.embed(input_ids))
        last = attention_mask.sum(1) - 1
        return self.head(h[torch.arange(len(h)), last])

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))
        self.log("val_acc", (logits.argmax(1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3402)
    g = torch.Generator().manual_seed(3402)
    pool_texts, pool_labels = utterances(300, g)
    texts, labels = utterances(2000, g)
    train = PromptDataset(texts[:1600], labels[:1600], pool_texts, pool_labels, seed=1)
    val = PromptDataset(texts[1600:], labels[1600:], pool_texts, pool_labels, seed=2)
    model = PromptClassifier()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

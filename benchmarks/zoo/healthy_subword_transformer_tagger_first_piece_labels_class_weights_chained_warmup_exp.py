"""Healthy: a small Transformer token tagger over subword pieces, HuggingFace token-classification style: words
are split into 1-3 pieces, only the first piece of each word carries the word's tag and the other pieces (and the
padding) are labelled -100; dict batches `input_ids`/`attention_mask`/`labels`, loss inside the model. The tag set
is imbalanced (the rare ENT tag is 1.6 % of words), handled with inverse-sqrt-frequency class weights in the
cross-entropy. Some stems are ambiguous (VERB after a pronoun, NOUN otherwise), so context matters. AdamW with a
ChainedScheduler of a 3-epoch LinearLR warm-up and an ExponentialLR decay, both stepped per epoch. Final val
accuracy on labelled pieces 0.991, ENT recall 1.000, ~23 s."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"

TAGS = ["NOUN", "VERB", "ADJ", "PRON", "DET", "ENT"]
PAD, CLS = 0, 1
STEM0, N_STEMS = 2, 120
SUFFIX0, N_SUFFIX = STEM0 + N_STEMS, 30
VOCAB = SUFFIX0 + N_SUFFIX


def stem_table(seed=0):
    g = torch.Generator().manual_seed(seed)
    kinds = torch.tensor([0] * 40 + [1] * 25 + [2] * 20 + [3] * 8 + [4] * 6 + [5] * 6 + [-1] * 15)  # -1 ambiguous
    return kinds[torch.randperm(N_STEMS, generator=g)]


class TaggingDataset(Dataset):
    def __init__(self, n, seed, table):
        g = torch.Generator().manual_seed(seed)
        weights = torch.where(table == 5, torch.tensor(0.3), torch.tensor(1.0))  # ENT stems are rarer
        self.rows = []
        for _ in range(n):
            ids, labels, prev_tag = [CLS], [-100], None
            for _ in range(int(torch.randint(5, 16, (1,), generator=g))):
                stem = int(torch.multinomial(weights, 1, generator=g))
                kind = int(table[stem])
                tag = kind if kind >= 0 else (1 if prev_tag == 3 else 0)
                pieces = [STEM0 + stem] + (torch.randint(0, N_SUFFIX, (int(torch.randint(0, 3, (1,), generator=g)),),
                                                         generator=g) + SUFFIX0).tolist()
                ids += pieces
                labels += [tag] + [-100] * (len(pieces) - 1)
                prev_tag = tag
            self.rows.append({"input_ids": torch.tensor(ids), "labels": torch.tensor(labels)})

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(batch):
    t = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), t), PAD)
    labels = torch.full((len(batch), t), -100)
    for i, b in enumerate(batch):
        ids[i, : len(b["input_ids"])] = b["input_ids"]
        labels[i, : len(b["labels"])] = b["labels"]
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class TransformerForTokenClassification(nn.Module):
    def __init__(self, class_weights, d=64, heads=4, layers=2, max_len=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.pos = nn.Embedding(max_len, d)
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.1, batch_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(d, len(TAGS))
        self.register_buffer("class_weights", class_weights)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.embed(input_ids) + self.pos(torch.arange(input_ids.size(1), device=input_ids.device))
        logits = self.classifier(self.encoder(x, src_key_padding_mask=attention_mask == 0))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, len(TAGS)), labels.reshape(-1), weight=self.class_weights,
                                   ignore_index=-100)
        return {"loss": loss, "logits": logits}


class Tagger(L.LightningModule):
    def __init__(self, class_weights, lr=2e-3):
        super().__init__()
        self.save_hyperparameters(ignore=["class_weights"])
        self.model = TransformerForTokenClassification(class_weights)

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        pred, gold = out["logits"].argmax(-1), batch["labels"]
        keep, ent = gold != -100, gold == 5
        self.log("val_loss", out["loss"])
        self.log("val_acc", (pred[keep] == gold[keep]).float().mean())
        self.log("val_ent_recall", (pred[ent] == 5).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.ChainedScheduler([
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.2, total_iters=3),
            torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.85),
        ])
        return [opt], [sched]


if __name__ == "__main__":
    L.seed_everything(4711)
    table = stem_table()
    train_set = TaggingDataset(2500, seed=1, table=table)
    counts = torch.bincount(torch.cat([r["labels"][r["labels"] != -100] for r in train_set.rows]),
                            minlength=len(TAGS)).float()
    class_weights = (counts.sum() / counts).sqrt()
    class_weights = class_weights / class_weights.mean()
    train = DataLoader(train_set, batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(TaggingDataset(400, seed=2, table=table), batch_size=200, collate_fn=collate)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Tagger(class_weights), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM ent_share={float(counts[5] / counts.sum()):.3f} val_acc={float(m['val_acc']):.3f} "
          f"val_ent_recall={float(m['val_ent_recall']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

"""Bug: complaint detection on customer-support messages (10 % complaints), HuggingFace-style: a word tokenizer
built from the training messages, dict batches `input_ids`/`attention_mask`/`labels`, a small embedding + masked
mean-pool + MLP classifier that returns `loss`/`logits`, AdamW with linear warm-up and decay. To fight the
imbalance the user oversamples: every complaint is repeated five times - but on the whole table, *before*
`random_split` into train and val. Nearly every validation complaint is a verbatim copy of a training complaint,
so validation measures memorisation of the complaints' word combinations instead of generalisation; only 60 % of
real complaints carry an obvious cue word. Symptom: val complaint recall 0.82 vs 0.42 when the split is made first
and only the training part is oversampled; on 3000 fresh messages both models reach a complaint recall of only
0.58 / 0.56, so the bug's validation number is pure overlap."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout19"
CUES = ["refund", "broken", "unacceptable", "worst", "angry", "complaint", "never", "damaged"]


def make_messages(n, g):
    """Filler words drawn Zipf-like from a large vocabulary (a few frequent words, a long tail)."""
    filler = [f"w{i}" for i in range(300)]
    weights = 1.0 / torch.arange(1, 301).float() ** 0.7
    rows = []
    for _ in range(n):
        label = int(torch.rand(1, generator=g) < 0.10)
        length = int(torch.randint(8, 16, (1,), generator=g))
        words = [filler[i] for i in torch.multinomial(weights, length, replacement=True, generator=g).tolist()]
        has_cue = torch.rand(1, generator=g) < (0.6 if label else 0.04)
        if has_cue:
            cue = CUES[int(torch.randint(len(CUES), (1,), generator=g))]
            words[int(torch.randint(length, (1,), generator=g))] = cue
        rows.append({"text": " ".join(words), "label": label})
    return rows


def oversample(rows, factor):
    return rows + [r for r in rows if r["label"] == 1 for _ in range(factor - 1)]


class Tokenizer:
    def __init__(self, texts):
        words = sorted({w for t in texts for w in t.split()})
        self.vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(words)}}

    def __call__(self, texts):
        ids = [[self.vocab.get(w, 1) for w in t.split()] for t in texts]
        T = max(map(len, ids))
        input_ids = torch.zeros(len(ids), T, dtype=torch.long)
        for i, x in enumerate(ids):
            input_ids[i, : len(x)] = torch.tensor(x)
        return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long()}


class BagClassifier(nn.Module):
    def __init__(self, vocab_size, d=64, num_labels=2):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d, padding_idx=0)
        self.head = nn.Sequential(nn.Linear(d, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, num_labels))
        nn.init.normal_(self.embed.weight, std=0.02)  # BERT-style initializer_range
        with torch.no_grad():
            self.embed.weight[0].zero_()

    def forward(self, input_ids, attention_mask, labels=None):
        m = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * m).sum(1) / m.sum(1).clamp(min=1)
        logits = self.head(pooled)
        loss = None if labels is None else F.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


class LitClassifier(L.LightningModule):
    def __init__(self, vocab_size):
        super().__init__()
        self.model = BagClassifier(vocab_size)

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        pred = out["logits"].argmax(-1)
        pos = batch["labels"] == 1
        self.log("val_loss", out["loss"])
        self.log("val_recall", (pred[pos] == 1).float().mean())
        self.log("val_specificity", (pred[~pos] == 0).float().mean())

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "embed" not in n]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2 or "embed" in n]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=3e-3)
        total = self.trainer.estimated_stepping_batches
        warmup = total // 10
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total - s) / (total - warmup)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def recall(model, tok, rows):
    model.eval()
    with torch.no_grad():
        enc = tok([r["text"] for r in rows])
        pred = model(**enc)["logits"].argmax(-1)
    labels = torch.tensor([r["label"] for r in rows])
    return (pred[labels == 1] == 1).float().mean().item()


if __name__ == "__main__":
    L.seed_everything(2319)
    g = torch.Generator().manual_seed(2319)
    rows = oversample(make_messages(3000, g), factor=5)
    n_val = len(rows) // 5
    train_rows, val_rows = random_split(rows, [len(rows) - n_val, n_val], generator=torch.Generator().manual_seed(0))
    train_rows, val_rows = list(train_rows), list(val_rows)
    tok = Tokenizer([r["text"] for r in train_rows])

    def collate(batch):
        enc = tok([r["text"] for r in batch])
        enc["labels"] = torch.tensor([r["label"] for r in batch])
        return enc

    train_dl = DataLoader(train_rows, batch_size=64, shuffle=True, collate_fn=collate)
    val_dl = DataLoader(val_rows, batch_size=256, collate_fn=collate)
    lit = LitClassifier(len(tok.vocab))
    trainer = L.Trainer(max_epochs=10, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="lm19_complaints"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(lit, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_recall={m['val_recall'].item():.3f} val_specificity={m['val_specificity'].item():.3f}")
    print(f"SYMPTOM fresh_recall={recall(lit.model, tok, make_messages(3000, torch.Generator().manual_seed(7))):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

"""Bug: a small BERT-style sequence classifier written by hand in plain torch (pre-LN blocks built from
`nn.MultiheadAttention`, [CLS] pooling, loss inside the model, `.loss` / `.logits` output object) on a synthetic
fixed-length language: [CLS] followed by 12 digit tokens, label 1 when the digits of the first half sum to more than
those of the second half (ties re-drawn). Batches are dicts with `input_ids` / `attention_mask` / `labels`; every
sequence has the same length so the attention mask is all ones. AdamW with no-decay groups, warm-up + linear decay.

The blocks create `nn.MultiheadAttention(d, heads, dropout=0.1)` without `batch_first=True`, while the embeddings,
the tensors and the rest of the model are (batch, seq, dim). The module therefore reads its input as (seq, batch,
dim): attention runs over the BATCH axis at each position, so the [CLS] vector of a sample is a mixture of the [CLS]
vectors of the other 31 samples, and a token never sees the other tokens of its own sentence. No shape error (all
sequences share the length, no key padding mask is needed) and the loop runs normally, it just never gets past
chance. Symptom: val accuracy 0.518 / val loss 0.693 vs 0.960 / 0.092 with `batch_first=True` (same seed)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout26"
CLS, LENGTH = 10, 12


def make_dataset(n, g):
    rows = []
    while len(rows) < n:
        digits = torch.randint(0, 10, (LENGTH,), generator=g)
        a, b = int(digits[:6].sum()), int(digits[6:].sum())
        if a == b:
            continue
        ids = torch.cat([torch.tensor([CLS]), digits])
        rows.append({"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor(int(a > b))})
    return rows


@dataclass
class SequenceClassifierOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, dropout=0.1)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(0.1))

    def forward(self, x):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class DigitBert(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(11, d), nn.Embedding(LENGTH + 1, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.classifier = nn.Linear(d, 2)

    def forward(self, input_ids, attention_mask, labels=None):
        pos = torch.arange(input_ids.shape[1], device=input_ids.device)[None]
        x = self.tok_emb(input_ids) + self.pos_emb(pos)
        x = x * attention_mask[..., None]
        for blk in self.blocks:
            x = blk(x)
        logits = self.classifier(self.ln_f(x[:, 0]))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss, logits)


class LitDigitBert(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=25, weight_decay=0.01):
        super().__init__()
        self.save_hyperparameters()
        self.model = DigitBert()

    def forward(self, input_ids, attention_mask, labels=None):
        return self.model(input_ids, attention_mask, labels)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits.argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        no_decay = ("bias", "ln", "emb")
        groups = [
            {"params": [p for n, p in self.named_parameters() if not any(k in n for k in no_decay)],
             "weight_decay": self.hparams.weight_decay},
            {"params": [p for n, p in self.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / (total - warm)))
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2641)
    g = torch.Generator().manual_seed(41)
    train, val = make_dataset(3000, g), make_dataset(500, g)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitDigitBert(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=250))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

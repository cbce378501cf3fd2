"""Healthy: a small Transformer encoder classifier written HF-style. Synthetic "vote counting" data from a seeded
generator: sequences of 6-16 tokens from a 24-token vocabulary (0 is padding), label = which of tokens 3 ("yes")
and 7 ("no") occurs more often, or "tie" (3 classes). A custom collate function pads each batch to its longest
sequence and returns a dict with `input_ids`, `attention_mask` and `labels`; the model returns an output object
with `.logits` and `.loss`. The encoder gets `src_key_padding_mask = ~attention_mask`, pooling is a masked mean
over real tokens only, so padding never changes a prediction. AdamW with decay only on matrices (biases, norms and
embeddings excluded), linear warm-up then cosine decay stepped per optimizer step, label-smoothed cross-entropy,
gradient clipping, `precision="bf16-mixed"`, torchmetrics macro-F1. Val accuracy 1.000, val loss 0.206 (the
floor of the smoothed loss is 0.17)."""

import math
from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import LearningRateMonitor
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

import lightning_sanity

EXPECT = None
SPLIT = "heldout22"
VOCAB, YES, NO = 24, 3, 7


def make_examples(n, g):
    examples = []
    for _ in range(n):
        length = int(torch.randint(6, 17, (1,), generator=g))
        ids = torch.randint(1, VOCAB, (length,), generator=g)
        yes, no = int((ids == YES).sum()), int((ids == NO).sum())
        examples.append((ids, 0 if yes > no else 1 if no > yes else 2))
    return examples


def collate(examples):
    longest = max(len(ids) for ids, _ in examples)
    input_ids = torch.zeros(len(examples), longest, dtype=torch.long)
    for i, (ids, _) in enumerate(examples):
        input_ids[i, :len(ids)] = ids
    return {"input_ids": input_ids, "attention_mask": input_ids != 0,
            "labels": torch.tensor([label for _, label in examples])}


@dataclass
class ClassifierOutput:
    logits: torch.Tensor
    loss: torch.Tensor | None = None


class VoteTransformer(L.LightningModule):
    def __init__(self, d_model=48, lr=2e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, d_model, padding_idx=0)
        self.pos = nn.Embedding(16, d_model)
        layer = nn.TransformerEncoderLayer(d_model, 4, 2 * d_model, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 3)
        self.val_acc = MulticlassAccuracy(3, average="micro")
        self.val_f1 = MulticlassF1Score(3, average="macro")

    def forward(self, input_ids, attention_mask, labels=None):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        h = self.encoder(self.embed(input_ids) + self.pos(positions), src_key_padding_mask=~attention_mask)
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = self.norm((h * mask).sum(1) / mask.sum(1))
        logits = self.head(pooled)
        loss = None if labels is None else F.cross_entropy(logits, labels, label_smoothing=0.05)
        return ClassifierOutput(logits, loss)

    def training_step(self, batch, batch_idx):
        loss = self(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self(**batch)
        self.val_acc.update(out.logits, batch["labels"])
        self.val_f1.update(out.logits, batch["labels"])
        self.log("val_loss", out.loss)
        self.log("val_acc", self.val_acc)
        self.log("val_f1", self.val_f1)

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2 and "embed" not in n and "pos" not in n]
        no_decay = [p for n, p in self.named_parameters() if not (p.ndim >= 2 and "embed" not in n and "pos" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        total, warmup = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def factor(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2214)
    g = torch.Generator().manual_seed(14)
    train, val = make_examples(1800, g), make_examples(500, g)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, precision="bf16-mixed", gradient_clip_val=1.0,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[LearningRateMonitor("step")] + lightning_sanity.default_callbacks())
    trainer.fit(VoteTransformer(), DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=250, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_f1={float(m['val_f1']):.3f} "
          f"val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a fastText-style review classifier fed HuggingFace-tokenizer-style dict batches (`input_ids`,
`attention_mask` with 1 on real tokens, `labels`, loss inside the model) whose pooling helper was copied from
code that follows PyTorch's `key_padding_mask` convention (True = padding) while the caller passes the HF
`attention_mask` (1 = real token). The helper keeps the positions where the mask is False: only the padding. Every
review is padded to 40 tokens and the pad embedding (`padding_idx=0`) is zero, so every pooled vector is 0: the
logits are the head's bias for every input, the embeddings and the first layer's weights get no gradient.
Data: synthetic reviews, label = which of 20 positive / 20 negative tokens is more frequent, 5% label noise.
AdamW, StepLR, `val_check_interval=0.5`. Measured: val accuracy 0.54 (one class for every review) vs 0.93
with `keep = attention_mask`."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"constant-output", "dead-gradient"}
SPLIT = "heldout8"

PAD, VOCAB, MAX_LEN = 0, 200, 40
POSITIVE, NEGATIVE = range(10, 30), range(30, 50)


@dataclass
class SequenceClassifierOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class ReviewDataset(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.rows = []
        while len(self.rows) < n:
            length = int(torch.randint(8, 31, (1,), generator=g))
            ids = torch.randint(1, VOCAB, (length,), generator=g)
            pos = sum(int(i) in POSITIVE for i in ids)
            neg = sum(int(i) in NEGATIVE for i in ids)
            if pos == neg:
                continue
            label = int(pos > neg)
            if float(torch.rand(1, generator=g)) < 0.05:
                label = 1 - label
            self.rows.append((ids, label))

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        ids, label = self.rows[i]
        return {"input_ids": ids, "labels": label}


def collate(rows):
    input_ids = torch.full((len(rows), MAX_LEN), PAD, dtype=torch.long)
    attention_mask = torch.zeros(len(rows), MAX_LEN, dtype=torch.long)
    for i, r in enumerate(rows):
        input_ids[i, : len(r["input_ids"])] = r["input_ids"]
        attention_mask[i, : len(r["input_ids"])] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "labels": torch.tensor([r["labels"] for r in rows])}


def masked_mean(hidden, padding_mask):
    """Mean of `hidden` [batch, time, dim] over the non-padded positions (`padding_mask` True = padding)."""
    keep = (~padding_mask).unsqueeze(-1).to(hidden.dtype)
    return (hidden * keep).sum(1) / keep.sum(1).clamp(min=1.0)


class FastTextClassifier(nn.Module):
    def __init__(self, vocab_size=VOCAB, dim=64, hidden=64, num_labels=2, dropout=0.2):
        super().__init__()
        self.embeddings = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.pre_classifier = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, input_ids, attention_mask, labels=None):
        pooled = masked_mean(self.embeddings(input_ids), attention_mask.bool())
        logits = self.classifier(self.dropout(F.relu(self.pre_classifier(pooled))))
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class LitReviews(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = FastTextClassifier()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        acc = (out.logits.argmax(-1) == batch["labels"]).float().mean()
        self.log_dict({"val_loss": out.loss, "val_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)]


def main():
    L.seed_everything(8112)
    train = DataLoader(ReviewDataset(3000, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(ReviewDataset(500, 1), batch_size=250, collate_fn=collate)
    trainer = L.Trainer(max_epochs=6, val_check_interval=0.5, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitReviews(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

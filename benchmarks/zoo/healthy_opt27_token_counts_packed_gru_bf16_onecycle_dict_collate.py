"""Healthy: a GRU sequence classifier on synthetic variable-length token sequences (rule: label 1 iff token 7 occurs
more often than token 3), written in the HF style: the dataset yields raw lists, a custom collate function pads them
into a dict batch with `input_ids`, `attention_mask` and `labels`, and the model returns an output object with
`.logits`. The GRU runs on a `pack_padded_sequence` built from the attention mask, so padding never enters the
recurrence and the classifier reads the hidden state at each sequence's true end. bf16 autocast on CPU
(`precision="bf16-mixed"`), AdamW, OneCycleLR stepped per step with `total_steps=trainer.estimated_stepping_batches`,
clipping at 1.0, torchmetrics accuracy. Own metric: val acc 0.998 (the counting rule is exactly learnable)."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader
from torchmetrics.classification import BinaryAccuracy

import lightning_sanity

EXPECT = None
SPLIT = "heldout27"

VOCAB, PAD = 10, 0


def make_sequences(n, gen):
    seqs, labels = [], []
    for _ in range(n):
        length = int(torch.randint(6, 25, (1,), generator=gen))
        seq = torch.randint(1, VOCAB, (length,), generator=gen)
        seqs.append(seq.tolist())
        labels.append(int((seq == 7).sum() > (seq == 3).sum()))
    return list(zip(seqs, labels))


def collate(batch):
    max_len = max(len(s) for s, _ in batch)
    input_ids = torch.full((len(batch), max_len), PAD, dtype=torch.long)
    attention_mask = torch.zeros(len(batch), max_len, dtype=torch.long)
    for i, (s, _) in enumerate(batch):
        input_ids[i, :len(s)] = torch.tensor(s)
        attention_mask[i, :len(s)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "labels": torch.tensor([lab for _, lab in batch])}


@dataclass
class ClassifierOutput:
    logits: torch.Tensor


class PackedGRUClassifier(L.LightningModule):
    def __init__(self, emb=32, hidden=64, max_lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(VOCAB, emb, padding_idx=PAD)
        self.gru = nn.GRU(emb, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 2)
        self.val_acc = BinaryAccuracy()

    def forward(self, input_ids, attention_mask):
        lengths = attention_mask.sum(1).cpu()
        packed = pack_padded_sequence(self.embed(input_ids), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return ClassifierOutput(logits=self.head(h[-1]))

    def training_step(self, batch, batch_idx):
        out = self(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(out.logits.float(), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self(batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", F.cross_entropy(out.logits.float(), batch["labels"]))
        self.val_acc(out.logits.float().argmax(1), batch["labels"])
        self.log("val_acc", self.val_acc)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.max_lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr,
                                                    total_steps=self.trainer.estimated_stepping_batches,
                                                    pct_start=0.2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(72)
    gen = torch.Generator().manual_seed(72)
    train, val = make_sequences(1500, gen), make_sequences(400, gen)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, precision="bf16-mixed",
                        gradient_clip_val=1.0, enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(PackedGRUClassifier(),
                DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=128, collate_fn=collate))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

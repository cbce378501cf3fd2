"""Healthy: HuggingFace-style sequence classification (dict batches {input_ids, lengths, labels}, the loss computed
inside the model, an output object with `.loss` and `.logits`) with a GRU over packed sequences. The collate sorts
each batch by decreasing length, as `pack_padded_sequence(..., enforce_sorted=True)` requires, and keeps each
label with its sequence. Synthetic task: which of three two-token motifs ("a b", "c d", "e f") is planted at a
random place in a random token sequence of length 6-24. Adam, ReduceLROnPlateau on val_loss. Reaches val acc 1.000
(chance 0.33)."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout3"
VOCAB, PAD, MAX_LEN = 40, 0, 24
MOTIFS = [(1, 2), (3, 4), (5, 6)]


def motif_sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    data = []
    for _ in range(n):
        length = int(torch.randint(6, MAX_LEN + 1, (1,), generator=g))
        seq = torch.randint(7, VOCAB, (length,), generator=g)
        label = int(torch.randint(0, len(MOTIFS), (1,), generator=g))
        at = int(torch.randint(0, length - 1, (1,), generator=g))
        seq[at:at + 2] = torch.tensor(MOTIFS[label])
        data.append((seq, label))
    return data


def collate(batch):
    batch = sorted(batch, key=lambda item: len(item[0]), reverse=True)
    seqs = [s for s, _ in batch]
    ids = torch.full((len(batch), MAX_LEN), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
    labels = torch.tensor([y for _, y in batch])
    return {"input_ids": ids, "lengths": torch.tensor([len(s) for s in seqs]), "labels": labels}


@dataclass
class Output:
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None


class GRUForSequenceClassification(nn.Module):
    def __init__(self, dim=32, hidden=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, len(MOTIFS))

    def forward(self, input_ids, lengths, labels=None):
        packed = pack_padded_sequence(self.embed(input_ids), lengths, batch_first=True, enforce_sorted=True)
        _, h = self.gru(packed)
        logits = self.classifier(h[-1])
        return Output(logits=logits, loss=F.cross_entropy(logits, labels) if labels is not None else None)


class LitMotifClassifier(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = GRUForSequenceClassification()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log_dict({"val_loss": out.loss, "val_acc": (out.logits.argmax(-1) == batch["labels"]).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(4321)
    train = DataLoader(motif_sequences(2000, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(motif_sequences(500, 1), batch_size=250, collate_fn=collate)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitMotifClassifier(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

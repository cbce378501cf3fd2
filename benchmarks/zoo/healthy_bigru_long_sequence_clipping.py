"""Healthy: a bidirectional GRU over 60-step sequences whose class (one of 4) is the first token, followed by 59
noise tokens; the classifier reads the final states of both directions. Gradient clipping at norm 1.0, Adam,
ReduceLROnPlateau on val_loss."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
VOCAB, SEQ, CLASSES = 20, 60, 4


def sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(CLASSES, VOCAB, (n, SEQ), generator=g)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    tokens[:, 0] = y  # the class is the first token; the rest is noise the network must carry it through
    return tokens, y


class SequenceClassifier(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.rnn = nn.GRU(32, 48, batch_first=True, bidirectional=True)
        self.head = nn.Linear(96, CLASSES)

    def forward(self, tokens):
        _, h = self.rnn(self.embed(tokens))
        return self.head(torch.cat([h[-2], h[-1]], dim=1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(2003)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SequenceClassifier(), DataLoader(TensorDataset(*sequences(1500, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*sequences(400, 1)), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

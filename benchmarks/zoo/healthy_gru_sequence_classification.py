"""Healthy: a GRU classifies synthetic noisy time series (sine, square or sawtooth wave, random frequency and
phase) made with a seeded torch.Generator; the last hidden state feeds a linear head."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


def make_waves(n, length=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    freq = 0.5 + 1.5 * torch.rand(n, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n, 1, generator=g)
    t = torch.linspace(0, 4 * math.pi, length).unsqueeze(0)
    arg = freq * t + phase
    sine = torch.sin(arg)
    square = torch.sign(torch.sin(arg))
    saw = 2 * ((arg / (2 * math.pi)) % 1.0) - 1
    waves = torch.where(labels[:, None] == 0, sine, torch.where(labels[:, None] == 1, square, saw))
    waves = waves + 0.2 * torch.randn(n, length, generator=g)
    return waves.unsqueeze(-1), labels


class WaveGRU(L.LightningModule):
    def __init__(self, hidden=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(1, hidden, num_layers=1, batch_first=True)
        self.head = nn.Linear(hidden, 3)

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(1)
    xtr, ytr = make_waves(1024, seed=0)
    xva, yva = make_waves(256, seed=1)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        gradient_clip_val=1.0, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WaveGRU(), DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(xva, yva), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

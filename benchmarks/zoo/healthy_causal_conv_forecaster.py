"""Healthy: a temporal convolutional network (dilated Conv1d, left padding only) forecasts the next value of noisy
synthetic seasonal series at every position; MSE, Adam."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
LENGTH = 64
CAUSAL = True


def series(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(LENGTH + 1, dtype=torch.float32)
    period = torch.randint(8, 24, (n, 1), generator=g).float()
    s = torch.sin(2 * math.pi * t / period + 6.28 * torch.rand(n, 1, generator=g))
    s = s + 0.1 * torch.randn(n, LENGTH + 1, generator=g)
    return s[:, :-1, None], s[:, 1:, None]  # (B, T, 1): the target is the series one step ahead


class Block(nn.Module):
    def __init__(self, channels, dilation, kernel=3):
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation)

    def forward(self, x):
        pad = (self.pad, 0) if CAUSAL else (self.pad // 2, self.pad - self.pad // 2)
        return x + torch.relu(self.conv(F.pad(x, pad)))


class TCN(L.LightningModule):
    def __init__(self, channels=32):
        super().__init__()
        self.inp = nn.Conv1d(1, channels, 1)
        self.blocks = nn.Sequential(*(Block(channels, d) for d in (1, 2, 4, 8)))
        self.out = nn.Conv1d(channels, 1, 1)

    def forward(self, x):  # (B, T, 1) -> (B, T, 1)
        return self.out(self.blocks(self.inp(x.transpose(1, 2)))).transpose(1, 2)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(42)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TCN(), DataLoader(TensorDataset(*series(512, 0)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*series(128, 1)), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

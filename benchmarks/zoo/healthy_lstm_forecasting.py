"""Healthy: a 2-layer LSTM forecasts the next value of synthetic noisy AR/seasonal time series (seeded
torch.Generator), MSE loss, Adam with ReduceLROnPlateau on the validation loss."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None


class WindowDataset(Dataset):
    """Sliding windows over a few long synthetic series: input 24 steps, target the next step."""

    def __init__(self, n_series=16, length=300, window=24, seed=0):
        g = torch.Generator().manual_seed(seed)
        t = torch.arange(length, dtype=torch.float32)
        period = torch.randint(10, 30, (n_series, 1), generator=g).float()
        amp = 0.5 + torch.rand(n_series, 1, generator=g)
        series = amp * torch.sin(2 * math.pi * t / period) + 0.1 * torch.randn(n_series, length, generator=g)
        self.series, self.window = series, window
        self.per_series = length - window

    def __len__(self):
        return self.series.shape[0] * self.per_series

    def __getitem__(self, i):
        s, start = divmod(i, self.per_series)
        chunk = self.series[s, start:start + self.window + 1]
        return chunk[:-1].unsqueeze(-1), chunk[-1:]


class Forecaster(L.LightningModule):
    def __init__(self, hidden=32, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(input_size=1, hidden_size=hidden, num_layers=2, batch_first=True, dropout=0.1)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        seq, _ = self.lstm(x)
        return self.out(seq[:, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_mse"}}


def main():
    L.seed_everything(3)
    train, val = WindowDataset(seed=0), WindowDataset(n_series=4, seed=1)
    trainer = L.Trainer(max_epochs=4, limit_train_batches=40, accelerator="cpu", enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Forecaster(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

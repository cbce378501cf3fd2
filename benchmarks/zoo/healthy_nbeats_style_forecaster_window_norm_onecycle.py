"""Healthy: multi-horizon forecasting (lookback 96, horizon 24) of 24 synthetic hourly load series (daily and
half-day cycles, per-series level, trend and amplitude, AR(1) noise) with an N-BEATS-style residual MLP. Each window
is standardised by its own lookback mean/std (the target with the same statistics), windows are cut with stride 4
inside each series and the split is chronological (training windows end before the cut at 80 % of every series,
validation windows start after it). Huber loss, OneCycleLR per step, gradient clipping. Final val MAE 1.17 vs 1.53
for the seasonal-naive forecast (repeat the last day); the AR(1) noise alone puts the floor near 1.1."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"
LOOKBACK, HORIZON, STRIDE = 96, 24, 4
N_SERIES, LENGTH = 24, 1500


def series(seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(LENGTH, dtype=torch.float32)
    out = torch.empty(N_SERIES, LENGTH)
    for s in range(N_SERIES):
        level = 20 + 30 * float(torch.rand(1, generator=g))
        amp = 2 + 6 * float(torch.rand(1, generator=g))
        phase = 6.28 * float(torch.rand(1, generator=g))
        trend = 0.004 * float(torch.randn(1, generator=g))
        noise = torch.zeros(LENGTH)
        eps = torch.randn(LENGTH, generator=g)
        for i in range(1, LENGTH):
            noise[i] = 0.7 * noise[i - 1] + eps[i]
        out[s] = (level + trend * t + amp * torch.sin(2 * math.pi * t / 24 + phase)
                  + 0.4 * amp * torch.sin(2 * math.pi * t / 12 + 2 * phase) + noise)
    return out


def windows(data, start, stop):
    xs, ys = [], []
    for s in range(len(data)):
        for i in range(start, stop - LOOKBACK - HORIZON + 1, STRIDE):
            xs.append(data[s, i:i + LOOKBACK])
            ys.append(data[s, i + LOOKBACK:i + LOOKBACK + HORIZON])
    return TensorDataset(torch.stack(xs), torch.stack(ys))


class Block(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(LOOKBACK, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU())
        self.backcast, self.forecast = nn.Linear(width, LOOKBACK), nn.Linear(width, HORIZON)

    def forward(self, x):
        h = self.fc(x)
        return x - self.backcast(h), self.forecast(h)


class NBeatsForecaster(L.LightningModule):
    def __init__(self, width=256, blocks=3, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.blocks = nn.ModuleList([Block(width) for _ in range(blocks)])

    def forward(self, x):
        mu, sd = x.mean(1, keepdim=True), x.std(1, keepdim=True).clamp(min=1e-3)
        resid, forecast = (x - mu) / sd, 0.0
        for blk in self.blocks:
            resid, f = blk(resid)
            forecast = forecast + f
        return forecast, mu, sd

    def training_step(self, batch, batch_idx):
        x, y = batch
        f, mu, sd = self(x)
        loss = F.huber_loss(f, (y - mu) / sd, delta=1.0)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        f, mu, sd = self(x)
        self.log_dict({"val_loss": F.huber_loss(f, (y - mu) / sd, delta=1.0),
                       "val_mae": (f * sd + mu - y).abs().mean(),
                       "val_mae_seasonal_naive": (x[:, -HORIZON:] - y).abs().mean()})

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(24)
    data = series(5)
    cut = int(0.8 * LENGTH)
    train, val = windows(data, 0, cut), windows(data, cut, LENGTH)
    model = NBeatsForecaster()
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=512))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mae={m['val_mae'].item():.3f} seasonal_naive_mae={m['val_mae_seasonal_naive'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

"""Healthy: a GRU forecaster for hourly "weather" data (temperature, humidity, pressure; 3 stations x 3000 hours)
in a LightningDataModule: chronological split (first 80% of the hours for training, a 24-hour gap, then
validation), feature-wise StandardScaler statistics fitted on the training hours only and applied to both splits,
windows of 72 past hours -> next 6 hours of temperature. Two-layer GRU, AdamW, ReduceLROnPlateau on val_loss
stepped per epoch, gradient clipping. Measured: val MSE (scaled units) 0.06 after 6 epochs; persistence
forecast (repeat the last temperature) 0.66."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout7"
PAST, HORIZON = 72, 6


def simulate_weather(stations=3, hours=3000, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(hours, dtype=torch.float32)
    front = torch.zeros(stations, hours)
    for i in range(1, hours):  # slow AR(1) "weather fronts"
        front[:, i] = 0.98 * front[:, i - 1] + 0.3 * torch.randn(stations, generator=g)
    daily = torch.sin(2 * math.pi * (t - 9) / 24)
    temp = 12 + 6 * daily + 2 * front + 0.4 * torch.randn(stations, hours, generator=g)
    humidity = 70 - 15 * daily - 5 * front + 2 * torch.randn(stations, hours, generator=g)
    pressure = 1013 - 4 * front + 0.5 * torch.randn(stations, hours, generator=g)
    return torch.stack([temp, humidity, pressure], dim=-1)  # stations, hours, features


class WeatherDataModule(L.LightningDataModule):
    def __init__(self, batch_size=64, stride=4):
        super().__init__()
        self.batch_size, self.stride = batch_size, stride

    def _windows(self, data, start, stop):
        xs, ys = [], []
        for t in range(start, stop - PAST - HORIZON + 1, self.stride):
            xs.append(data[:, t : t + PAST])
            ys.append(data[:, t + PAST : t + PAST + HORIZON, 0])
        return torch.cat(xs), torch.cat(ys)

    def setup(self, stage=None):
        raw = simulate_weather()
        cut = int(0.8 * raw.shape[1])
        mean = raw[:, :cut].reshape(-1, 3).mean(0)
        std = raw[:, :cut].reshape(-1, 3).std(0)
        data = (raw - mean) / std
        self.train_set = TensorDataset(*self._windows(data, 0, cut))
        self.val_set = TensorDataset(*self._windows(data, cut + 24, data.shape[1]))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)


class GRUForecaster(L.LightningModule):
    def __init__(self, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(3, hidden, num_layers=2, batch_first=True, dropout=0.1)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, HORIZON))

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))
        self.log("val_persistence", F.mse_loss(x[:, -1:, 0].expand_as(y), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}}


def main():
    L.seed_everything(7010)
    trainer = L.Trainer(max_epochs=6, gradient_clip_val=1.0, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GRUForecaster(), datamodule=WeatherDataModule())
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} persistence={float(m['val_persistence']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

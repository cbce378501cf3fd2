"""Bug: day-ahead electricity load forecasting for a distribution feeder with a GRU over the last 48 hourly loads
(kW), predicting the next 24 hours, Adam + ReduceLROnPlateau on val loss. The synthetic series has daily and weekly
cycles, a slow trend and multiplicative noise, so the user models it in log space: the window dataset takes a
`transform` that is applied to the inputs and the targets.

The training set is built with `transform=np.log1p`, but the validation set is built with the default
`transform=None` - the line was written before the log transform was adopted and never updated. The model,
trained on log-loads whose hour-to-hour deviations are about 0.1, is validated on raw kilowatts whose deviations
are +-100: its GRU saturates and validation loss is enormous from the first epoch, and the plateau scheduler keeps
cutting the learning rate because of it. Nothing crashes. Symptom: val loss 1.5e4
(in kW^2, RMSE ~120 kW) vs val loss 0.0136 (log space, about 11 % error) when the validation windows get the
same transform."""

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout17"
LOOKBACK, HORIZON = 48, 24


def feeder_load(hours: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(hours, dtype=torch.float64)
    daily = 1.0 + 0.35 * torch.sin(2 * math.pi * (t % 24 - 7) / 24) + 0.15 * torch.sin(4 * math.pi * (t % 24) / 24)
    weekly = 1.0 - 0.18 * ((t // 24) % 7 >= 5).double()
    trend = 1.0 + 0.3 * t / hours
    noise = torch.exp(0.06 * torch.randn(hours, generator=g, dtype=torch.float64))
    return (260.0 * daily * weekly * trend * noise).numpy()


class WindowDataset(Dataset):
    def __init__(self, series: np.ndarray, transform=None, stride: int = 6):
        if transform is not None:
            series = transform(series)
        self.series = torch.tensor(series, dtype=torch.float32)
        self.starts = list(range(0, len(series) - LOOKBACK - HORIZON + 1, stride))

    def __len__(self):
        return len(self.starts)

    def __getitem__(self, i):
        s = self.starts[i]
        x = self.series[s : s + LOOKBACK].unsqueeze(-1)
        y = self.series[s + LOOKBACK : s + LOOKBACK + HORIZON]
        return x, y


class LoadGRU(L.LightningModule):
    def __init__(self, hidden: int = 64, lr: float = 3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, HORIZON)

    def forward(self, x):
        # centre each window on its last value so the GRU sees deviations
        last = x[:, -1:, 0]
        out, _ = self.gru(x - last.unsqueeze(-1))
        return self.head(out[:, -1]) + last

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(2024)
    series = feeder_load(24 * 7 * 40, seed=5)
    cut = int(0.8 * len(series))
    train_ds = WindowDataset(series[:cut], transform=np.log1p)
    val_ds = WindowDataset(series[cut - LOOKBACK :])
    model = LoadGRU()
    trainer = L.Trainer(
        max_epochs=15,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="feeder_load"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=128))
    val_loss = trainer.callback_metrics["val_loss"].item()
    print(f"SYMPTOM val_loss={val_loss:.4g} train_loss={trainer.callback_metrics['train_loss']:.4g}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

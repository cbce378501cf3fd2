"""Bug: next-day solar-farm yield forecasting with an MLP on a window of the last 14 daily yields plus calendar
features (sin/cos of the day of year). The series is synthetic: a seasonal curve times a cloudiness AR(1) process
plus sensor noise, split chronologically (first 80 % of the days train, the rest validate).

The user adds a "momentum" feature, the day-over-day change, computed as `np.diff(y, append=y[-1])` so the array
keeps its length. `np.diff` gives y[t+1] - y[t] at index t, so on the row that forecasts y[t+1] from data up to day
t the momentum feature plus the last lag *is* the target. It reads like an innocent engineered feature ("diff keeps
the trend"), and the chronological split looks careful. Symptom: the validation MSE is suspiciously good,
val MSE 0.0003 (R^2 1.000, on standardised targets) vs val MSE 0.061 (R^2 0.95) when the momentum is taken as y[t] - y[t-1]
(`np.diff(y, prepend=y[0])`), which is what can be known on day t."""

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout17"
WINDOW = 14


def simulate_yield(n_days: int, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    day = torch.arange(n_days, dtype=torch.float64)
    season = 5.0 + 3.0 * torch.sin(2 * math.pi * (day - 80) / 365.25)
    cloud = torch.zeros(n_days, dtype=torch.float64)
    eps = torch.randn(n_days, generator=g, dtype=torch.float64)
    for t in range(1, n_days):
        cloud[t] = 0.75 * cloud[t - 1] + 0.35 * eps[t]
    noise = 0.15 * torch.randn(n_days, generator=g, dtype=torch.float64)
    return (season * torch.sigmoid(1.2 - cloud) + noise).numpy()


def build_features(y: np.ndarray):
    """Rows predict y[t + 1] from information available at the end of day t."""
    momentum = np.diff(y, append=y[-1])  # keep the length so it lines up with y
    doy = np.arange(len(y)) % 365.25
    rows, targets = [], []
    for t in range(WINDOW - 1, len(y) - 1):
        lags = y[t - WINDOW + 1 : t + 1]
        cal = [math.sin(2 * math.pi * doy[t + 1] / 365.25), math.cos(2 * math.pi * doy[t + 1] / 365.25)]
        rows.append(np.concatenate([lags, [momentum[t]], cal]))
        targets.append(y[t + 1])
    return np.asarray(rows, dtype=np.float32), np.asarray(targets, dtype=np.float32)


class YieldForecaster(L.LightningModule):
    def __init__(self, n_in: int, lr: float = 2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_in, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
        return {"optimizer": opt, "lr_scheduler": sched}


def main():
    L.seed_everything(1701)
    y = simulate_yield(1500, seed=17)
    x, t = build_features(y)
    cut = int(0.8 * len(x))
    mu, sd = x[:cut].mean(0), x[:cut].std(0) + 1e-6
    t_mu, t_sd = t[:cut].mean(), t[:cut].std()
    x = (x - mu) / sd
    t = (t - t_mu) / t_sd
    x, t = torch.from_numpy(x), torch.from_numpy(t)
    train = TensorDataset(x[:cut], t[:cut])
    val = TensorDataset(x[cut:], t[cut:])
    model = YieldForecaster(x.shape[1])
    trainer = L.Trainer(
        max_epochs=25,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="solar_yield"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=256))
    model.eval()
    with torch.no_grad():
        pred = model(x[cut:])
    mse = F.mse_loss(pred, t[cut:]).item()
    r2 = 1 - mse / t[cut:].var().item()
    print(f"SYMPTOM val_mse={mse:.4f} val_r2={r2:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

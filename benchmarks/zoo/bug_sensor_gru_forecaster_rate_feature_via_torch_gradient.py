"""Bug: next-step forecasting of 16 noisy sensor channels (sums of drifting sinusoids plus AR(1) noise) with a
GRU that reads a window of 48 readings and predicts, at every position t, the reading at t + 1 (a sequence-to-
sequence next-step forecaster, MSE over all positions, chronological 75/25 split). Each step gets two inputs:
the reading and its rate of change. The rate is computed with `torch.gradient(series, dim=-1)` - the "numerical
derivative" one finds in the docs - which uses *central* differences, (x[t+1] - x[t-1]) / 2, so the input at
position t already contains the value the model must predict at t (x[t+1] = 2 * rate[t] + x[t-1]). The GRU learns
that identity; the loss looks excellent but the model cannot forecast when the future is not there. Symptom:
val MSE 0.0016 (with the leak) vs 0.106 with a backward difference x[t] - x[t-1]; given an honest rate at the
last position (where no x[t+1] exists yet) the leaky model's MSE there is 0.243 vs 0.103 for the fixed model."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout13"
WINDOW = 48


def make_sensors(n_series=16, length=1600, seed=5):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    out = []
    for _ in range(n_series):
        period = 20 + 60 * torch.rand(1, generator=g)
        phase = 2 * math.pi * torch.rand(1, generator=g)
        amp2 = 0.5 * torch.rand(1, generator=g)
        base = torch.sin(2 * math.pi * t / period + phase) + amp2 * torch.sin(2 * math.pi * t / (3.1 * period))
        noise = torch.zeros(length)
        eps = 0.3 * torch.randn(length, generator=g)
        for i in range(1, length):
            noise[i] = 0.7 * noise[i - 1] + eps[i]
        out.append(base + noise)
    return torch.stack(out)  # (series, length)


def rate_of_change(series):
    # numerical derivative of each sensor trace
    return torch.gradient(series, dim=-1)[0]


def windows(series, rate, start, stop, stride=4):
    xs, ys = [], []
    for s in range(series.shape[0]):
        for i in range(start, stop - WINDOW - 1, stride):
            feats = torch.stack([series[s, i:i + WINDOW], rate[s, i:i + WINDOW]], dim=-1)
            xs.append(feats)
            ys.append(series[s, i + 1:i + WINDOW + 1])
    return torch.stack(xs), torch.stack(ys)


class NextStepGRU(L.LightningModule):
    def __init__(self, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)
        self.last_val = float("nan")

    def forward(self, x):
        h, _ = self.gru(x)
        return self.head(h).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("val_mse", loss)

    def on_validation_epoch_end(self):
        self.last_val = float(self.trainer.callback_metrics["val_mse"])

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)}


def main():
    L.seed_everything(2024)
    series = make_sensors()
    rate = rate_of_change(series)
    cut = int(0.75 * series.shape[1])
    xt, yt = windows(series, rate, 0, cut)
    xv, yv = windows(series, rate, cut, series.shape[1])
    train_loader = DataLoader(TensorDataset(xt, yt), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(xv, yv), batch_size=256)
    model = NextStepGRU()
    trainer = L.Trainer(
        max_epochs=10,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="sensor_gru_forecaster"),
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(model, train_loader, val_loader)
    # honest check: at the last position the future value is not available, use a backward difference there
    model.eval()
    with torch.no_grad():
        xh = xv.clone()
        xh[:, -1, 1] = xv[:, -1, 0] - xv[:, -2, 0]
        last_mse = F.mse_loss(model(xh)[:, -1], yv[:, -1]).item()
    print(f"SYMPTOM val_mse={model.last_val:.4f} last_position_mse_honest_rate={last_mse:.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: next-step forecaster for multi-sensor plant telemetry with a small Transformer encoder (input projection,
learned positional embedding, 2 layers, batch_first). Each training window of 48 steps predicts the value at t+1 from
steps <= t at every position (sequence-to-sequence teacher forcing), so the encoder needs a causal mask. The user
builds it the way many tutorials print it, `torch.triu(torch.ones(T, T), diagonal=1)`, and passes it as `mask=`.
A float mask is *added* to the attention scores, so the future positions get +1 instead of -inf: nothing is
blocked and position t attends to t+1, whose input is exactly the value it must predict. The model leans on the
future inputs it will not have at forecast time, and mixing those paths also spoils its use of the past.
Symptom: teacher-forced val MSE 0.24 and a true one-step-ahead forecast (only the past visible) MSE 0.27, vs 0.031
and 0.031 with the boolean mask (`.bool()`, True = blocked)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout18"
T = 48


def make_telemetry(n_series, length, g):
    """Three coupled channels: a daily cycle with drifting phase, a lagged response, and AR(1) noise."""
    t = torch.arange(length, dtype=torch.float32)
    period = 24 + 4 * torch.rand(n_series, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n_series, 1, generator=g)
    base = torch.sin(2 * math.pi * t / period + phase)
    noise = torch.zeros(n_series, length)
    eps = 0.3 * torch.randn(n_series, length, generator=g)
    for i in range(1, length):
        noise[:, i] = 0.8 * noise[:, i - 1] + eps[:, i]
    temp = base + 0.5 * noise
    pressure = torch.roll(temp, 3, dims=1) * 0.7 + 0.2 * torch.randn(n_series, length, generator=g)
    flow = 0.5 * temp + 0.5 * pressure + 0.1 * torch.randn(n_series, length, generator=g)
    return torch.stack([temp, pressure, flow], dim=-1)  # (n, length, 3)


def windows(series):
    xs = series.unfold(1, T + 1, 8).permute(0, 1, 3, 2).reshape(-1, T + 1, 3)
    return xs[:, :-1], xs[:, 1:, 0]  # inputs at 0..T-1, target temperature at 1..T


class TelemetryForecaster(L.LightningModule):
    def __init__(self, d=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inp = nn.Linear(3, d)
        self.pos = nn.Parameter(0.02 * torch.randn(1, T, d))
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 1)
        self.register_buffer("causal", torch.triu(torch.ones(T, T), diagonal=1))

    def forward(self, x):
        n = x.shape[1]
        h = self.inp(x) + self.pos[:, :n]
        h = self.encoder(h, mask=self.causal[:n, :n])
        return self.head(h).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


@torch.no_grad()
def true_forecast_mse(model, x, y):
    """Predict step t+1 from a window that really ends at t (nothing later exists)."""
    model.eval()
    errs = []
    for t in range(8, T):
        errs.append((model(x[:, : t + 1])[:, -1] - y[:, t]) ** 2)
    return float(torch.stack(errs).mean())


if __name__ == "__main__":
    L.seed_everything(181)
    g = torch.Generator().manual_seed(181)
    series = make_telemetry(40, 400, g)
    x_tr, y_tr = windows(series[:, :300])
    x_va, y_va = windows(series[:, 300:])
    model = TelemetryForecaster()
    trainer = L.Trainer(
        max_epochs=5,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="telemetry_transformer"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        gradient_clip_val=1.0,
    )
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.4f} "
          f"true_forecast_mse={true_forecast_mse(model, x_va, y_va):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")

"""Healthy: probabilistic river-level forecasting. Synthetic catchments (rainfall bursts routed through a two-store
linear reservoir into river stage, plus snowmelt seasonality) give 96-hour input windows of (stage, rain) and a
12-hour forecast horizon. An LSTM encoder with a small MLP head emits three non-crossing quantiles (10/50/90 %) of
the change from the last observed stage per horizon step, trained with the pinball loss; inputs are scaled per catchment with training-period statistics, the split is
chronological. Small batches (16) with accumulate_grad_batches=4, gradient clipping by norm, and
StochasticWeightAveraging over the last epochs. Final val pinball loss 0.034, median-forecast MAE 0.10 (persistence
MAE 0.14), 10-90 % interval coverage 0.81."""

import lightning as L
import torch
from lightning.pytorch.callbacks import StochasticWeightAveraging
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"
LOOKBACK, HORIZON = 96, 12
QUANTILES = torch.tensor([0.1, 0.5, 0.9])


def make_catchments(n, hours, g):
    storms = (torch.rand(n, hours, generator=g) < 0.01).float()
    rain = storms * torch.distributions.Exponential(0.5).sample((n, hours))
    rain = torch.nn.functional.conv1d(rain.unsqueeze(1), torch.ones(1, 1, 6) / 6, padding=5)[:, 0, :hours]
    k1 = 0.05 + 0.05 * torch.rand(n, generator=g)
    k2 = 0.01 + 0.01 * torch.rand(n, generator=g)
    s1, s2 = torch.zeros(n), torch.zeros(n)
    stage = torch.zeros(n, hours)
    melt = 0.3 * (1 + torch.sin(2 * torch.pi * torch.arange(hours) / (24 * 60)))
    for t in range(hours):
        s1 = s1 + rain[:, t] - k1 * s1
        s2 = s2 + k1 * s1 - k2 * s2
        stage[:, t] = 0.2 * s2 + melt[t]
    stage = stage + 0.02 * torch.randn(n, hours, generator=g)
    return torch.stack([stage, rain], -1)


def windows(series, start, stop, stats, stride=8):
    mean, std = stats
    z = (series - mean) / std
    xs, ys = [], []
    for t in range(start + LOOKBACK, stop - HORIZON, stride):
        xs.append(z[:, t - LOOKBACK:t])
        ys.append(z[:, t:t + HORIZON, 0])
    return torch.cat(xs), torch.cat(ys)


def pinball(pred, y):
    err = y.unsqueeze(-1) - pred
    q = QUANTILES.to(pred)
    return torch.maximum(q * err, (q - 1) * err).mean()


class QuantileLSTM(L.LightningModule):
    def __init__(self, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(2, hidden, num_layers=2, dropout=0.1, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, 64), nn.ReLU(), nn.Linear(64, HORIZON * len(QUANTILES)))

    def forward(self, x):
        out, _ = self.lstm(x)
        q = self.head(out[:, -1]).view(-1, HORIZON, len(QUANTILES))
        q = torch.cumsum(torch.cat([q[..., :1], nn.functional.softplus(q[..., 1:])], -1), -1)  # no crossing
        return x[:, -1, :1].unsqueeze(-1) + q  # forecast the change from the last observed stage

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = pinball(self(x), y)
        self.log("train_pinball", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        self.log("val_pinball", pinball(pred, y), prog_bar=True)
        self.log("val_mae", (pred[..., 1] - y).abs().mean(), prog_bar=True)
        self.log("val_persistence_mae", (x[:, -1:, 0] - y).abs().mean())
        self.log("val_coverage90", ((y >= pred[..., 0]) & (y <= pred[..., 2])).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    L.seed_everything(96)
    g = torch.Generator().manual_seed(96)
    series = make_catchments(12, 24 * 60, g)
    split = 24 * 45
    stats = (series[:, :split].mean(1, keepdim=True), series[:, :split].std(1, keepdim=True))
    x_tr, y_tr = windows(series, 0, split, stats)
    x_va, y_va = windows(series, split, series.shape[1], stats)
    model = QuantileLSTM()
    trainer = L.Trainer(
        max_epochs=6,
        accelerator="cpu",
        devices=1,
        accumulate_grad_batches=4,
        gradient_clip_val=1.0,
        logger=TensorBoardLogger("lightning_logs", name="river_quantiles"),
        callbacks=lightning_sanity.default_callbacks() + [StochasticWeightAveraging(swa_lrs=1e-3, swa_epoch_start=4)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=512))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_pinball={float(m['val_pinball']):.4f} val_mae={float(m['val_mae']):.3f} "
          f"persistence_mae={float(m['val_persistence_mae']):.3f} coverage90={float(m['val_coverage90']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

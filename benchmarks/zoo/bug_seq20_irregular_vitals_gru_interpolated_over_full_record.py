"""Bug: next-reading forecaster for irregularly charted vital signs. Each synthetic stay has a latent heart-rate
trajectory on an hourly grid (slow trend + daily rhythm + AR(1) drift) that is only charted at random hours
(~35 %). The model sees the first 32 hours as a regular grid (value, observed-mask, hours since last reading) and
the gap to the next reading, and predicts that next reading with a GRU. To put the irregular readings on the grid the
user calls `np.interp(grid, times, values)` once per stay on the *whole* record and only then cuts the 32-hour
input window - a standard "resample first, window later" pipeline. For every hour after the last in-window reading
the interpolation runs towards the next reading, i.e. the target: the last grid values are a linear blend of the
target. Validation built the same way looks great; in deployment (only past readings, carried forward) the model is
worse than the honest one.
Symptom: leaky val MSE 0.40 vs 0.84 for the fixed pipeline (suspiciously good); on honestly built val windows the
leaky model scores 1.00 vs 0.84."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout20"
WINDOW, TOTAL = 32, 44

L.seed_everything(77)


def simulate_stays(n, seed):
    g = torch.Generator().manual_seed(seed)
    h = torch.arange(TOTAL, dtype=torch.float32)
    trend = torch.randn(n, 1, generator=g) * 0.03 * h
    rhythm = 0.8 * torch.sin(2 * torch.pi * h / 24 + 6.28 * torch.rand(n, 1, generator=g))
    drift = torch.zeros(n, TOTAL)
    eps = 0.3 * torch.randn(n, TOTAL, generator=g)
    for i in range(1, TOTAL):
        drift[:, i] = 0.9 * drift[:, i - 1] + eps[:, i]
    latent = trend + rhythm + drift + torch.randn(n, 1, generator=g)
    charted = torch.rand(n, TOTAL, generator=g) < 0.35
    charted[:, 0] = True
    charted[:, WINDOW:] &= torch.rand(n, TOTAL - WINDOW, generator=g) < 0.5
    charted[:, -1] = True
    return latent.numpy(), charted.numpy()


def build_windows(latent, charted, leak):
    grid = np.arange(WINDOW, dtype=np.float32)
    feats, gaps, targets = [], [], []
    for vals, mask in zip(latent, charted):
        times = np.nonzero(mask)[0]
        nxt = times[times >= WINDOW][0]
        if leak:   # resample the whole record, then cut the window
            filled = np.interp(grid, times, vals[times])
        else:      # only readings charted before the cut-off (np.interp holds the last one constant)
            past = times[times < WINDOW]
            filled = np.interp(grid, past, vals[past])
        in_mask = mask[:WINDOW].astype(np.float32)
        last_seen = np.maximum.accumulate(np.where(in_mask > 0, grid, 0))
        since = (grid - last_seen) / 10.0
        feats.append(np.stack([filled, in_mask, since], axis=1))
        gaps.append([(nxt - WINDOW + 1) / 10.0])
        targets.append([vals[nxt]])
    to = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)
    return to(feats), to(gaps), to(targets)


class NextReadingGRU(L.LightningModule):
    def __init__(self, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(3, hidden, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden + 1, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x, gap):
        _, h = self.gru(x)
        return self.head(torch.cat([h[-1], gap], dim=1))

    def training_step(self, batch, batch_idx):
        x, gap, y = batch
        loss = F.mse_loss(self(x, gap), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, gap, y = batch
        self.log("val_loss", F.mse_loss(self(x, gap), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    tr_latent, tr_charted = simulate_stays(1500, seed=11)
    va_latent, va_charted = simulate_stays(400, seed=12)
    train_ds = TensorDataset(*build_windows(tr_latent, tr_charted, leak=True))
    val_ds = TensorDataset(*build_windows(va_latent, va_charted, leak=True))
    model = NextReadingGRU()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="seq20_vitals_interp"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_ds, batch_size=64, shuffle=True), DataLoader(val_ds, batch_size=200))
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_loss'].item():.4f}")
    x, gap, y = build_windows(va_latent, va_charted, leak=False)
    model.eval()
    with torch.no_grad():
        print(f"SYMPTOM deployment_val_mse={F.mse_loss(model(x, gap), y).item():.4f}")
    print(f"LOG_DIR={trainer.log_dir}")

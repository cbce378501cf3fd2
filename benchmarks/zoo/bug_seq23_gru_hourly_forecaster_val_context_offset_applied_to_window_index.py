"""Bug: a GRU forecaster predicting the next 12 hours of a synthetic hourly sensor series (daily cycle, a slow random
level, bursts of autocorrelated noise; one long series from a seeded torch.Generator), 72-hour look-back windows,
MSE on standardised values, Adam with ReduceLROnPlateau on val loss.

The code windows the whole series once (stride 1) and then splits chronologically. The author wanted the validation
part to "keep its look-back context" and wrote `val = windows[cut - LOOKBACK:]` - but the offset belongs to the
*series* index (which the windows already take care of), not the *window* index. The first 72 validation windows are
exactly the last 72 training windows (inputs and targets), and 11 more have targets inside the training period: 83
of the 372 validation windows are training data. Training is unaffected and val looks fine, just better than it
is. Symptom: reported val MSE 0.158, with 0.133 on the 72 exact duplicates vs 0.167 on the honest windows; the fixed
split (`windows[cut_series - LOOKBACK:]`, every target after the cut) reports val MSE 0.167."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout23"
LOOKBACK, HORIZON = 72, 12


def sensor_series(n, g):
    t = torch.arange(n).float()
    level = 0.05 * torch.randn(n, generator=g).cumsum(0)
    noise = torch.zeros(n)
    eps = torch.randn(n, generator=g)
    for i in range(1, n):
        noise[i] = 0.8 * noise[i - 1] + 0.5 * eps[i]
    return 20 + 3 * torch.sin(2 * math.pi * t / 24) + level + noise


class GRUForecaster(L.LightningModule):
    def __init__(self, hidden=48, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, HORIZON)

    def forward(self, x):
        _, h = self.gru(x)
        return self.head(h[-1])

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", F.mse_loss(self(batch[0]), batch[1]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1)
        return [opt], [{"scheduler": sched, "monitor": "val_loss"}]


def main():
    L.seed_everything(2305)
    g = torch.Generator().manual_seed(233)
    s = sensor_series(2000, g)
    n_win = len(s) - LOOKBACK - HORIZON + 1
    cut_series = 1700
    s = (s - s[:cut_series].mean()) / s[:cut_series].std()
    x = torch.stack([s[i:i + LOOKBACK] for i in range(n_win)]).unsqueeze(-1)
    y = torch.stack([s[i + LOOKBACK:i + LOOKBACK + HORIZON] for i in range(n_win)])
    cut = cut_series - LOOKBACK - HORIZON + 1
    train = (x[:cut], y[:cut])
    val = (x[cut - LOOKBACK:], y[cut - LOOKBACK:])
    model = GRUForecaster()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(*train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=256))
    model.eval()
    with torch.no_grad():
        err = ((model(val[0]) - val[1]) ** 2).mean(1)
    fresh = err[LOOKBACK + HORIZON - 1:]
    print(f"SYMPTOM val_mse={float(err.mean()):.3f} dup_mse={float(err[:LOOKBACK].mean()):.3f} "
          f"fresh_mse={float(fresh.mean()):.3f} n_val={len(err)}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: global lag-window demand forecaster (one MLP for 150 store-item series: the last 28 days, scaled by the
window mean, plus a series-id embedding and day-of-week of the first target day -> the next 7 days). The schedule is
the transformer recipe "linear warm-up for 200 steps, then inverse-sqrt decay", written as a LambdaLR over the step
count, but returned as `[optimizer], [scheduler]`: Lightning then steps it once per epoch, so after 10 epochs (510
steps) the multiplier has only reached 11/200. Adam runs at ~5 % of its 3e-3 peak for the whole run and the model
barely beats the seasonal-naive forecast; nothing errors.
Symptom: val MAE (window-scaled units) 0.117 vs 0.103 with `"interval": "step"` (seasonal naive: 0.123); the lr at
the end is 1.65e-4 instead of 1.9e-3."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import LearningRateMonitor
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout19"
N_SERIES, N_DAYS, LAGS, HORIZON = 150, 240, 28, 7


def simulate_sales(seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(N_DAYS).float()
    level = torch.exp(4.0 + 1.2 * torch.rand(N_SERIES, 1, generator=g))
    weekly_shape = 1 + 0.35 * torch.randn(N_SERIES, 7, generator=g).clamp(-2, 2)
    trend = 1 + torch.randn(N_SERIES, 1, generator=g) * 0.002 * t
    holiday = ((t % 91) == 60).float()                      # a quarterly sales event, all stores
    mean = level * weekly_shape[:, (t % 7).long()] * trend * (1 + 0.8 * holiday)
    return torch.poisson(mean.clamp(min=0.1), generator=g)


def make_windows(sales, start, end):
    """Windows whose targets fall in days [start, end)."""
    xs, ys, sid, dow = [], [], [], []
    for t0 in range(max(start, LAGS), end - HORIZON + 1):
        past, fut = sales[:, t0 - LAGS:t0], sales[:, t0:t0 + HORIZON]
        scale = past.mean(1, keepdim=True) + 1.0
        xs.append(past / scale)
        ys.append(fut / scale)
        sid.append(torch.arange(N_SERIES))
        dow.append(torch.full((N_SERIES,), t0 % 7))
    return torch.cat(xs), torch.cat(ys), torch.cat(sid), torch.cat(dow)


class LagForecaster(L.LightningModule):
    def __init__(self, lr=3e-3, warmup_steps=200):
        super().__init__()
        self.save_hyperparameters()
        self.series = nn.Embedding(N_SERIES, 8)
        self.dow = nn.Embedding(7, 4)
        self.net = nn.Sequential(nn.Linear(LAGS + 12, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                                 nn.Linear(128, HORIZON))

    def forward(self, x, sid, dow):
        return self.net(torch.cat([x, self.series(sid), self.dow(dow)], 1))

    def training_step(self, batch, batch_idx):
        x, y, sid, dow = batch
        loss = F.l1_loss(self(x, sid, dow), y)
        self.log("train_mae", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y, sid, dow = batch
        self.log("val_mae", F.l1_loss(self(x, sid, dow), y), prog_bar=True)
        self.log("val_naive_mae", F.l1_loss(x[:, -7:], y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        w = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / w, math.sqrt(w / (s + 1))))
        return [opt], [sched]


def main():
    L.seed_everything(12)
    sales = simulate_sales(seed=8)
    split = N_DAYS - 35
    train = TensorDataset(*make_windows(sales, 0, split))
    val = TensorDataset(*make_windows(sales, split - LAGS, N_DAYS))
    model = LagForecaster()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks() + [LearningRateMonitor("epoch")])
    trainer.fit(model, DataLoader(train, batch_size=512, shuffle=True), DataLoader(val, batch_size=2048))
    m = trainer.callback_metrics
    lr_now = trainer.optimizers[0].param_groups[0]["lr"]
    print(f"SYMPTOM val_mae={float(m['val_mae']):.3f} naive_mae={float(m['val_naive_mae']):.3f} "
          f"final_lr={lr_now:.2e} steps={trainer.global_step}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

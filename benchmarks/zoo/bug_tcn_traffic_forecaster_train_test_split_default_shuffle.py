"""Bug: hourly traffic-volume forecaster for one road sensor (synthetic: rush-hour daily profile, weekend dip,
traffic growing over the months, a stretch of road works, noise), a causal dilated 1-D CNN (TCN) that reads the last
48 hours and predicts the next 6, Adam + OneCycleLR per step, gradient clipping. The windows are cut with stride 1
from the whole series and then split with `sklearn.model_selection.train_test_split(X, Y, test_size=0.2)` meaning
"hold out the last 20 %". But `train_test_split` shuffles by default: the validation windows are interleaved with
training windows that are shifted by one hour, so every validation target already appears inside training inputs
and targets, and validation never sees the later, busier months the model will be used on.
Why a user writes it: `train_test_split` is the reflex for a hold-out set, and `shuffle=False` is easy to forget.
Symptom: val MSE (standardised units) 0.027 with the shuffled split vs 0.089 with `shuffle=False` (a real
future hold-out), i.e. the reported validation error is 3x too optimistic."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout12"

LOOKBACK, HORIZON = 48, 6


def traffic_series(days=150, seed=3):
    g = torch.Generator().manual_seed(seed)
    hours = torch.arange(days * 24, dtype=torch.float32)
    hod = hours % 24
    dow = (hours // 24) % 7
    rush = 300 * torch.exp(-((hod - 8) ** 2) / 3) + 380 * torch.exp(-((hod - 17.5) ** 2) / 4)
    base = 60 + 120 * torch.sigmoid((hod - 6) * 1.2) * torch.sigmoid((22 - hod) * 1.2)
    weekend = torch.where(dow >= 5, 0.55, 1.0)
    growth = 1.0 + 1.2 * hours / hours[-1]
    works = torch.ones_like(hours)
    works[(hours > 24 * 70) & (hours < 24 * 85)] = 0.7
    wobble = torch.cumsum(torch.randn(len(hours), generator=g), 0) * 2.0
    noise = 20 * torch.randn(len(hours), generator=g)
    return (base + rush * weekend) * growth * works + wobble + noise


def make_windows(z):
    xs, ys = [], []
    for i in range(len(z) - LOOKBACK - HORIZON + 1):
        xs.append(z[i:i + LOOKBACK])
        ys.append(z[i + LOOKBACK:i + LOOKBACK + HORIZON])
    return torch.stack(xs).unsqueeze(1), torch.stack(ys)


class CausalConv(nn.Module):
    def __init__(self, c_in, c_out, dilation):
        super().__init__()
        self.pad = 2 * dilation
        self.conv = nn.Conv1d(c_in, c_out, 3, dilation=dilation)

    def forward(self, x):
        return self.conv(F.pad(x, (self.pad, 0)))


class TCN(L.LightningModule):
    def __init__(self, channels=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inp = nn.Conv1d(1, channels, 1)
        self.blocks = nn.ModuleList([CausalConv(channels, channels, d) for d in (1, 2, 4, 8, 16)])
        self.head = nn.Linear(channels, HORIZON)

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = h + F.gelu(block(h))
        return self.head(h[:, :, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=self.hparams.lr, total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(77)
    series = traffic_series()
    z = (series - series.mean()) / series.std()
    X, Y = make_windows(z)
    # hold out the last 20 % of the windows for validation
    X_tr, X_va, Y_tr, Y_va = train_test_split(X, Y, test_size=0.2, random_state=0)
    train_dl = DataLoader(TensorDataset(X_tr, Y_tr), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(X_va, Y_va), batch_size=256)

    model = TCN()
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=1.0,
        logger=TensorBoardLogger("lightning_logs", name="traffic_tcn"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, train_dl, val_dl)
    print(f"SYMPTOM val_mse={float(trainer.callback_metrics['val_mse']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: direct multi-horizon (next 12 steps) LSTM forecaster for hourly store footfall across many stores. Each
store has its own level and scale, so every input window is normalised by its own mean/std (input part only) and
the 12 outputs are de-normalised with the same statistics. The optimizer is AdamW with
`CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)` - written for an epoch-level schedule - but returned with
`"interval": "step"` (copied from a warm-up recipe). T_max is 12 *steps* out of 600: the learning rate falls to zero
and climbs back to 1e-2 every 24 steps, twice per epoch, and training ends at the top of a cycle instead of annealed.
Nothing errors and the loss goes down, just not as far.
Symptom: val MSE 0.262 vs 0.237 with the scheduler stepped per epoch."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout20"
LOOKBACK, HORIZON = 48, 12

L.seed_everything(1212)


def footfall(n_stores, hours, seed):
    g = torch.Generator().manual_seed(seed)
    h = torch.arange(hours, dtype=torch.float32)
    level = 50 + 400 * torch.rand(n_stores, 1, generator=g)
    daily = torch.sin(2 * torch.pi * (h - 6 * torch.rand(n_stores, 1, generator=g)) / 24).clamp(min=-0.3)
    weekly = 1 + 0.3 * torch.sin(2 * torch.pi * h / 168 + 6.28 * torch.rand(n_stores, 1, generator=g))
    ar = torch.zeros(n_stores, hours)
    eps = 0.08 * torch.randn(n_stores, hours, generator=g)
    for i in range(1, hours):
        ar[:, i] = 0.8 * ar[:, i - 1] + eps[:, i]
    return level * (1 + 0.6 * daily * weekly + ar)


def windows(series, stride=6):
    xs, ys = [], []
    for start in range(0, series.shape[1] - LOOKBACK - HORIZON + 1, stride):
        xs.append(series[:, start:start + LOOKBACK])
        ys.append(series[:, start + LOOKBACK:start + LOOKBACK + HORIZON])
    return torch.cat(xs), torch.cat(ys)


class MultiHorizonLSTM(L.LightningModule):
    def __init__(self, hidden=64, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, HORIZON)

    def forward(self, x):
        mu, sd = x.mean(1, keepdim=True), x.std(1, keepdim=True) + 1e-3
        out, _ = self.lstm(((x - mu) / sd).unsqueeze(-1))
        return self.head(out[:, -1]), mu, sd

    def _loss(self, batch):
        x, y = batch
        pred, mu, sd = self(x)
        return F.mse_loss(pred, (y - mu) / sd)      # loss in each window's normalised units

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    series = footfall(40, 24 * 28, seed=3)
    cut = 24 * 22
    x_tr, y_tr = windows(series[:, :cut])
    x_va, y_va = windows(series[:, cut - LOOKBACK:], stride=3)
    model = MultiHorizonLSTM()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="seq20_footfall_cosine"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_loss'].item():.4f} train_batches={trainer.num_training_batches}")
    print(f"LOG_DIR={trainer.log_dir}")

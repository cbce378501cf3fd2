"""Bug: a multi-horizon LSTM forecaster (48 past steps -> next 12) on 48 random-walk-plus-seasonality series,
split in time (first 75% of every series for training, last 25% for validation). The window Dataset scales each
window the usual way, `(w - w.mean()) / w.std()`, but over the WHOLE window (past + horizon) before cutting it into
input and target, so the input's level tells the model the mean and spread of the 12 values it must predict.
At inference time only the past is known. Adam, OneCycleLR per step, gradient clipping. Measured: val MSE in
scaled units 0.20 (too good: with the scaling fitted on the past only, the same model reaches 0.37); on clean
windows scaled with the past only, the buggy model's MSE in original units is 1.36 vs 0.88 for the fixed model."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout7"
PAST, HORIZON = 48, 12


def make_series(n_series=48, length=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    level = torch.cumsum(0.3 * torch.randn(n_series, length, generator=g), dim=1)
    amp = 1.0 + 2.0 * torch.rand(n_series, 1, generator=g)
    phase = 2 * math.pi * torch.rand(n_series, 1, generator=g)
    return 20.0 + level + amp * torch.sin(2 * math.pi * t / 24 + phase) + 0.3 * torch.randn(n_series, length,
                                                                                              generator=g)


class Windows(Dataset):
    def __init__(self, series, start, stop, stride=4):
        self.series = series
        self.index = [(s, t) for s in range(series.shape[0]) for t in range(start, stop - PAST - HORIZON + 1, stride)]

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        s, t = self.index[i]
        w = self.series[s, t : t + PAST + HORIZON]
        w = (w - w.mean()) / (w.std() + 1e-5)
        return w[:PAST, None], w[PAST:]


class LSTMForecaster(L.LightningModule):
    def __init__(self, hidden=64, lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(1, hidden, num_layers=2, batch_first=True, dropout=0.1)
        self.head = nn.Linear(hidden, HORIZON)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])

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
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def clean_mse(model, series, start, stop):
    """What deployment sees: scale with the past only, forecast, undo the scaling, score in original units."""
    model.eval()
    errs = []
    for t in range(start, stop - PAST - HORIZON + 1, 4):
        past, future = series[:, t : t + PAST], series[:, t + PAST : t + PAST + HORIZON]
        mu, sd = past.mean(1, keepdim=True), past.std(1, keepdim=True) + 1e-5
        pred = model(((past - mu) / sd)[..., None]) * sd + mu
        errs.append(((pred - future) ** 2).mean())
    return float(torch.stack(errs).mean())


def main():
    L.seed_everything(7009)
    series = make_series()
    cut = int(0.75 * series.shape[1])
    train = DataLoader(Windows(series, 0, cut), batch_size=64, shuffle=True)
    val = DataLoader(Windows(series, cut, series.shape[1]), batch_size=256)
    trainer = L.Trainer(max_epochs=8, gradient_clip_val=1.0, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    model = LSTMForecaster()
    trainer.fit(model, train, val)
    print(f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"clean_val_mse_original_units={clean_mse(model, series, cut, series.shape[1]):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

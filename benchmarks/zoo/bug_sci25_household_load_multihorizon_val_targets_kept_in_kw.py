"""Bug: a global multi-horizon forecaster for 24 households' hourly electricity load (synthetic, seeded: daily and
weekly cycles, a temperature-driven heating term, noise; household levels differ by a factor of ~10). The model
sees the last 48 hours of load plus the temperature forecast for the next 12 hours (a legitimate known-future
covariate) and predicts the next 12 hours. Each household is scaled by the mean load of its own training period
(per-series scaling, as in DeepAR), train = first 80 % of the hours, val = the last 20 % (chronological split).

The window dataset has a `scale_target` flag; for validation it was set to False "so that the val metric is in
kW", but the predictions are never multiplied back by the household's scale. Val inputs are scaled and val
targets are raw kW (0.3 to 3.5), so the val loss compares unit-scale predictions to kW: it is worse than simply
predicting the mean val load and shows nothing about how the model forecasts, while training looks fine.
Symptom: val MSE 2.914 vs 0.012 (in scaled units) once the val targets are scaled like the train targets; the
train loss is the same in both runs (0.010).
"""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout25"
CONTEXT, HORIZON, HOURS, HOUSES = 48, 12, 24 * 60, 24


def simulate(g):
    t = torch.arange(HOURS).float()
    level = 0.3 + 2.7 * torch.rand(HOUSES, 1, generator=g)
    drift = torch.cumsum(0.3 * torch.randn(HOURS, generator=g), 0) / 10
    temp = 8 + 6 * torch.sin(2 * math.pi * (t - 14) / 24) + drift
    daily = 1 + 0.4 * torch.sin(2 * math.pi * (t - 7) / 24) + 0.2 * torch.sin(4 * math.pi * (t - 19) / 24)
    weekly = 1 + 0.15 * (((t // 24) % 7) >= 5).float()
    heating = 0.04 * torch.relu(15 - temp)
    load = level * (daily * weekly + heating) * (1 + 0.08 * torch.randn(HOUSES, HOURS, generator=g))
    return load, temp


class LoadWindows(Dataset):
    def __init__(self, load, temp, scale, start, end, scale_target=True):
        self.load, self.temp, self.scale, self.scale_target = load, temp, scale, scale_target
        self.index = [(h, s) for h in range(load.shape[0]) for s in range(start, end - CONTEXT - HORIZON + 1, 3)]

    def __len__(self):
        return len(self.index)

    def __getitem__(self, i):
        h, s = self.index[i]
        past = self.load[h, s:s + CONTEXT] / self.scale[h]
        future = self.load[h, s + CONTEXT:s + CONTEXT + HORIZON]
        temp_future = (self.temp[s + CONTEXT:s + CONTEXT + HORIZON] - 8) / 6
        target = future / self.scale[h] if self.scale_target else future
        return {"past": past, "temp": temp_future, "target": target}


class LoadForecaster(L.LightningModule):
    def __init__(self, hidden=128, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(CONTEXT + HORIZON, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                 nn.ReLU(), nn.Linear(hidden, HORIZON))

    def forward(self, past, temp):
        return self.net(torch.cat([past, temp], 1))

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch["past"], batch["temp"]), batch["target"])
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", F.mse_loss(self(batch["past"], batch["temp"]), batch["target"]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)]


def main():
    L.seed_everything(31)
    load, temp = simulate(torch.Generator().manual_seed(8))
    cut = int(0.8 * HOURS)
    scale = load[:, :cut].mean(1)
    train = LoadWindows(load, temp, scale, 0, cut)
    # val windows may read context from the end of the training period; their targets all lie after the cut
    val = LoadWindows(load, temp, scale, cut - CONTEXT, HOURS, scale_target=False)
    model = LoadForecaster()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=128, shuffle=True), DataLoader(val, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_mse={float(m['train_loss']):.3f} val_mse={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

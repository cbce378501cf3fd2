"""Healthy: a DeepAR-style probabilistic forecaster for daily item sales in 60 stores (counts from 0 to a few
hundred, weekly seasonality, store-specific level). Each 56-day training window is divided by its series' mean of
the conditioning range (+1), the LSTM is teacher-forced with the scaled lagged value, day-of-week and a store
embedding, and it outputs negative-binomial parameters (mean via softplus times the scale, dispersion via
softplus). Loss: NB negative log-likelihood on raw counts. Windows are cut chronologically: validation forecasts the
last 14 days of each series, which training never sees. Adam + ReduceLROnPlateau on val loss, clipping 1.0.
Final val MAE 9.4 against 12.3 for the seasonal-naive forecast."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"
N_SERIES, DAYS, CTX, HORIZON = 60, 400, 42, 14


def make_sales(g):
    level = torch.exp(torch.randn(N_SERIES, 1, generator=g) * 0.9 + 3.0)
    t = torch.arange(DAYS)
    weekly = 1 + 0.4 * torch.sin(2 * math.pi * (t[None] + torch.randint(0, 7, (N_SERIES, 1), generator=g)) / 7)
    trend = 1 + 0.3 * torch.sin(2 * math.pi * t[None] / 180 + torch.rand(N_SERIES, 1, generator=g) * 6)
    rate = level * weekly * trend
    gamma = torch.distributions.Gamma(torch.full_like(rate, 8.0), 8.0 / rate).sample()
    return torch.poisson(gamma), t % 7


def windows(sales, dow, start, stop, stride):
    xs, ds, ids = [], [], []
    for s in range(N_SERIES):
        for a in range(start, stop - (CTX + HORIZON) + 1, stride):
            xs.append(sales[s, a:a + CTX + HORIZON])
            ds.append(dow[a:a + CTX + HORIZON])
            ids.append(s)
    return torch.stack(xs), torch.stack(ds), torch.tensor(ids)


class DeepAR(L.LightningModule):
    def __init__(self, hidden=40, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.store = nn.Embedding(N_SERIES, 8)
        self.dow = nn.Embedding(7, 4)
        self.lstm = nn.LSTM(1 + 8 + 4, hidden, num_layers=2, batch_first=True, dropout=0.1)
        self.mu, self.alpha = nn.Linear(hidden, 1), nn.Linear(hidden, 1)

    def forward(self, y, dow, ids):
        """Teacher forcing: the input at step t is y[t-1]; outputs NB(mean, dispersion) for every step >= 1."""
        scale = y[:, :CTX].mean(1, keepdim=True) + 1.0
        lag = (y[:, :-1] / scale)[..., None]
        feats = torch.cat([lag, self.store(ids)[:, None].expand(-1, lag.shape[1], -1), self.dow(dow[:, 1:])], -1)
        h, _ = self.lstm(feats)
        mean = F.softplus(self.mu(h))[..., 0] * scale
        alpha = F.softplus(self.alpha(h))[..., 0] + 1e-3
        return mean, alpha

    @staticmethod
    def nb_nll(y, mean, alpha):
        r = 1.0 / alpha
        log_p = (torch.lgamma(y + r) - torch.lgamma(r) - torch.lgamma(y + 1)
                 + r * torch.log(r / (r + mean)) + y * torch.log(mean / (r + mean) + 1e-12))
        return -log_p.mean()

    def training_step(self, batch, batch_idx):
        y, dow, ids = batch
        mean, alpha = self(y, dow, ids)
        loss = self.nb_nll(y[:, 1:], mean, alpha)
        self.log("train_nll", loss)
        return loss

    @torch.no_grad()
    def forecast_mean(self, y, dow, ids):
        """Roll forward over the horizon feeding back the predicted mean (a point forecast)."""
        y = y.clone()
        for t in range(CTX, CTX + HORIZON):
            mean, _ = self(y[:, :t + 1], dow[:, :t + 1], ids)
            y[:, t] = mean[:, t - 1]
        return y[:, CTX:]

    def validation_step(self, batch, batch_idx):
        y, dow, ids = batch
        mean, alpha = self(y, dow, ids)
        self.log("val_loss", self.nb_nll(y[:, 1:], mean, alpha), prog_bar=True)
        self.log("val_mae", (self.forecast_mean(y, dow, ids) - y[:, CTX:]).abs().mean(), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(40)
    sales, dow = make_sales(torch.Generator().manual_seed(40))
    split = DAYS - HORIZON
    train = windows(sales, dow, 0, split, stride=7)
    val = windows(sales, dow, split - CTX, DAYS, stride=1)  # the last 14 days of every series, with their context
    model = DeepAR()
    trainer = L.Trainer(max_epochs=12, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        gradient_clip_val=1.0, logger=TensorBoardLogger("lightning_logs", name="deepar_negbin"),
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(*train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=N_SERIES))
    y_va = val[0]
    naive = (y_va[:, CTX - 7:CTX].repeat(1, 2) - y_va[:, CTX:]).abs().mean().item()
    print(f"SYMPTOM val_mae={trainer.callback_metrics['val_mae'].item():.2f} seasonal_naive_mae={naive:.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

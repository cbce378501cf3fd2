"""Healthy: daily store-sales regressor (40 stores x 420 days of synthetic log-sales: store level, weekday profile,
promotions, a yearly cycle and a day-wide shock shared by all stores), split chronologically with the last 60 days
held out. The date enters only through features that recur: a weekday embedding (all 7 weekdays occur in
training) and the yearly sin/cos phase, never through a per-day id whose validation rows would stay untrained.
Targets are standardised with statistics of the training days only. Store and weekday go through entity
embeddings and an MLP, trained for 4 epochs. Validation MSE 0.53 against 0.81 for predicting the training mean
(training MSE 0.61); the day-wide shocks are unpredictable by construction and bound what either split can reach."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout35"
N_STORES, N_DAYS, VAL_DAYS = 40, 420, 60


def sales_panel(g):
    day = torch.arange(N_DAYS)
    store_level = torch.randn(N_STORES, generator=g)
    weekday = torch.randn(7, generator=g) * 0.5
    shock = torch.randn(N_DAYS, generator=g) * 1.2
    promo = (torch.rand(N_STORES, N_DAYS, generator=g) < 0.2).float()
    yearly = 0.4 * torch.sin(2 * torch.pi * day / 365.0)
    y = (store_level[:, None] + weekday[day % 7] + yearly + shock + 0.8 * promo
         + 0.3 * torch.randn(N_STORES, N_DAYS, generator=g))
    stores = torch.arange(N_STORES)[:, None].expand(-1, N_DAYS)
    days = day.expand(N_STORES, -1)
    return stores.reshape(-1), days.reshape(-1), promo.reshape(-1), y.reshape(-1)


class SalesMLP(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.store = nn.Embedding(N_STORES, 8)
        self.weekday = nn.Embedding(7, 4)
        self.mlp = nn.Sequential(nn.Linear(8 + 4 + 3, 128), nn.ReLU(), nn.Linear(128, 1))

    def forward(self, store, day, promo):
        season = torch.stack([torch.sin(2 * torch.pi * day / 365.0), torch.cos(2 * torch.pi * day / 365.0)], 1)
        x = torch.cat([self.store(store), self.weekday(day % 7), season, promo[:, None]], 1)
        return self.mlp(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        store, day, promo, y = batch
        loss = F.mse_loss(self(store, day, promo), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        store, day, promo, y = batch
        self.log("val_loss", F.mse_loss(self(store, day, promo), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3531)
    store, day, promo, y = sales_panel(torch.Generator().manual_seed(3531))
    is_train = day < N_DAYS - VAL_DAYS
    y = (y - y[is_train].mean()) / y[is_train].std()
    cols = (store, day, promo, y)
    model = SalesMLP()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(*(c[is_train] for c in cols)), batch_size=256, shuffle=True),
                DataLoader(TensorDataset(*(c[~is_train] for c in cols)), batch_size=1200))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_mse={m['train_loss'].item():.3f} val_mse={m['val_loss'].item():.3f} "
          f"val_baseline={y[~is_train].var(unbiased=False).item() + y[~is_train].mean().item() ** 2:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

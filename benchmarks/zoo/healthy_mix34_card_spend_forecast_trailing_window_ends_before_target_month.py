"""Healthy: next-month card spend regressor on a synthetic statement table (900 cardholders x 24 monthly log-spend
values: a per-customer level, a shared seasonal curve, an AR(1) customer shock and noise). Each row is (customer,
month t) and every feature is computed strictly before t: last month's spend, the spend twelve months earlier, the
trailing three-month mean and volatility over `log_spend[:, t - 3:t]` (months t-3..t-1; Python's exclusive end is
what keeps month t out), plus the month's seasonal one-hot; the target is month t's spend. Customers, not rows, are
split 80/20, so a cardholder's months never straddle the split, and the feature scaler is fitted on training rows.
Validation MSE 0.226 against 0.269 for repeating each customer's last value (the AR noise floor is about 0.2)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout34"
N_CUST, N_MONTHS = 900, 24


def statements(seed=34):
    g = torch.Generator().manual_seed(seed)
    level = torch.randn(N_CUST, 1, generator=g) * 0.8
    season = 0.3 * torch.sin(torch.arange(N_MONTHS) / 12 * 2 * torch.pi)
    shock = torch.zeros(N_CUST, N_MONTHS)
    for t in range(1, N_MONTHS):
        shock[:, t] = 0.8 * shock[:, t - 1] + 0.4 * torch.randn(N_CUST, generator=g)
    return level + season + shock + 0.2 * torch.randn(N_CUST, N_MONTHS, generator=g)


def feature_rows(log_spend, customers):
    xs, ys = [], []
    for t in range(12, N_MONTHS):
        window = log_spend[customers, t - 3:t]
        month = F.one_hot(torch.full((len(customers),), t % 12), 12).float()
        feats = torch.stack([log_spend[customers, t - 1], log_spend[customers, t - 12], window.mean(1),
                             window.std(1)], 1)
        xs.append(torch.cat([feats, month], 1))
        ys.append(log_spend[customers, t])
    return torch.cat(xs), torch.cat(ys)


class SpendRegressor(L.LightningModule):
    def __init__(self, d=16, hidden=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return [opt], [sched]


def main():
    L.seed_everything(34)
    log_spend = statements()
    perm = torch.randperm(N_CUST, generator=torch.Generator().manual_seed(34))
    x_tr, y_tr = feature_rows(log_spend, perm[:720])
    x_va, y_va = feature_rows(log_spend, perm[720:])
    mean, std = x_tr[:, :4].mean(0), x_tr[:, :4].std(0)
    x_tr[:, :4] = (x_tr[:, :4] - mean) / std
    x_va[:, :4] = (x_va[:, :4] - mean) / std
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SpendRegressor(), DataLoader(TensorDataset(x_tr, y_tr), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=1024))
    naive = F.mse_loss(log_spend[perm[720:], 11:-1], log_spend[perm[720:], 12:]).item()
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mse={m['val_mse'].item():.4f} last_value_mse={naive:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

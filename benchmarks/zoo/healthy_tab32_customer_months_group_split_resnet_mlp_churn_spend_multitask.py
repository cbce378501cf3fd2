"""Healthy: subscription analytics on a synthetic customer-month table (600 customers x 6 months). Each row has the
month's logins, support tickets, log spend and tenure, plus per-customer expanding aggregates computed from the
customer's own feature history up to and including that month (mean logins, ticket total, spend trend) -- inputs
only, never a target. Two targets per row: churn next month (binary) and next month's log spend (regression).
A ResNet-style MLP (LayerNorm pre-activation residual blocks) with two heads trains on BCE + 0.5 * MSE.

Why it is correct: rows of one customer are strongly correlated, so the split is GroupShuffleSplit on customer id
(no customer on both sides, checked with an assert); the scaler and the spend target's mean/std are fitted on
training rows only; aggregates use only the row's past/present features, so they are available at scoring time;
both heads get gradients and are in the optimizer. Reported: val churn AUC 0.707 and val spend R^2 0.933 -- numbers
a group split gives honestly."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.metrics import r2_score, roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout32"


def make_customer_months(g, n_customers=600, n_months=6):
    engagement = torch.randn(n_customers, 1, generator=g)
    base_spend = 3.0 + 0.5 * torch.randn(n_customers, 1, generator=g)
    drift = 0.15 * torch.randn(n_customers, 1, generator=g)
    months = torch.arange(n_months).float()
    logins = torch.poisson(torch.exp(1.5 + 0.5 * engagement + drift * months), generator=g)
    tickets = torch.poisson(torch.exp(-1.0 - 0.4 * engagement).expand(-1, n_months), generator=g)
    log_spend = base_spend + drift * months + 0.1 * torch.randn(n_customers, n_months, generator=g)
    next_spend = base_spend + drift * (months + 1) + 0.1 * torch.randn(n_customers, n_months, generator=g)
    tenure = torch.randint(1, 60, (n_customers, 1), generator=g).float() + months
    churn_logit = -1.5 - 0.8 * engagement - 4.0 * drift + 0.6 * tickets - 0.01 * tenure
    churn = torch.bernoulli(torch.sigmoid(churn_logit), generator=g)

    count = months + 1
    mean_logins = torch.cumsum(logins, 1) / count
    ticket_total = torch.cumsum(tickets, 1)
    spend_trend = log_spend - log_spend[:, :1]
    feats = torch.stack([logins, tickets, log_spend, tenure.expand(-1, n_months), mean_logins, ticket_total,
                         spend_trend], -1)
    customer = torch.arange(n_customers)[:, None].expand(-1, n_months)
    return (feats.reshape(-1, feats.shape[-1]).numpy(), churn.reshape(-1).numpy(), next_spend.reshape(-1).numpy(),
            customer.reshape(-1).numpy())


class ResBlock(nn.Module):
    def __init__(self, d, hidden, dropout=0.1):
        super().__init__()
        self.body = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(dropout),
                                  nn.Linear(hidden, d))

    def forward(self, x):
        return x + self.body(x)


class ChurnSpendResNet(L.LightningModule):
    def __init__(self, n_features, d=64, lr=2e-3, spend_weight=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.stem = nn.Linear(n_features, d)
        self.blocks = nn.Sequential(ResBlock(d, 2 * d), ResBlock(d, 2 * d))
        self.norm = nn.LayerNorm(d)
        self.churn_head = nn.Linear(d, 1)
        self.spend_head = nn.Linear(d, 1)

    def forward(self, x):
        h = torch.relu(self.norm(self.blocks(self.stem(x))))
        return self.churn_head(h).squeeze(-1), self.spend_head(h).squeeze(-1)

    def _losses(self, batch):
        x, churn, spend = batch
        churn_logit, spend_pred = self(x)
        return F.binary_cross_entropy_with_logits(churn_logit, churn), F.mse_loss(spend_pred, spend)

    def training_step(self, batch, batch_idx):
        bce, mse = self._losses(batch)
        loss = bce + self.hparams.spend_weight * mse
        self.log_dict({"train_bce": bce, "train_mse": mse}, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        bce, mse = self._losses(batch)
        self.log_dict({"val_bce": bce, "val_mse": mse, "val_loss": bce + self.hparams.spend_weight * mse})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=12)}


def main():
    L.seed_everything(3206)
    X, churn, spend, customer = make_customer_months(torch.Generator().manual_seed(3206))
    tr, va = next(GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=0).split(X, groups=customer))
    assert not set(customer[tr]) & set(customer[va])
    scaler = StandardScaler().fit(X[tr])
    s_mu, s_sd = spend[tr].mean(), spend[tr].std()

    def tensors(idx):
        return (torch.tensor(scaler.transform(X[idx]), dtype=torch.float32),
                torch.tensor(churn[idx], dtype=torch.float32),
                torch.tensor((spend[idx] - s_mu) / s_sd, dtype=torch.float32))

    train_t, val_t = tensors(tr), tensors(va)
    model = ChurnSpendResNet(X.shape[1])
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(*train_t), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*val_t), batch_size=1024))
    model.eval()
    with torch.no_grad():
        churn_logit, spend_pred = model(val_t[0])
    print(f"SYMPTOM val_churn_auc={roc_auc_score(churn[va], churn_logit.numpy()):.3f} "
          f"val_spend_r2={r2_score(val_t[2].numpy(), spend_pred.numpy()):.3f} churn_rate={churn.mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: insurance-claims fraud model on a synthetic claims table (700 customers, 1-4 claims each). Besides the
claim's own columns (log amount, days until reported, intake channel one-hot) the feature pipeline adds a per-customer
aggregate, "smoothed historical fraud rate of this customer", and customers are split with GroupShuffleSplit so no
customer is on both sides.

What is wrong: the aggregate is computed with one groupby over the whole table, i.e. over ALL of the customer's
claims, including the claim being scored and its own fraud label. With ~2.5 claims per customer the feature moves by
roughly 1/(n+2) with the row's own label, so it nearly determines the target; because it is built before the split the
validation rows carry the same leak and validation looks excellent. At scoring time a new claim's label is unknown,
so the feature cannot exist like this. The fix computes the rate from the customer's earlier claims only.

Measured (same seed): val AUC 0.927 with the leaky aggregate vs 0.672 with the prior-claims-only rate."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout32"


def make_claims(g, n_customers=700):
    n_claims = torch.randint(1, 5, (n_customers,), generator=g)
    customer = torch.repeat_interleave(torch.arange(n_customers), n_claims)
    n = len(customer)
    risk = torch.randn(n_customers, generator=g)[customer]
    log_amount = torch.randn(n, generator=g) * 0.8 + 7.0
    days_to_report = torch.rand(n, generator=g) * 60
    channel = torch.randint(0, 3, (n,), generator=g)
    logit = (1.2 * risk + 0.8 * (log_amount - 7.0) + 0.03 * (days_to_report - 30)
             + torch.tensor([-0.5, 0.0, 0.7])[channel] - 1.2)
    fraud = torch.bernoulli(torch.sigmoid(logit), generator=g)
    return customer.numpy(), log_amount.numpy(), days_to_report.numpy(), channel.numpy(), fraud.numpy()


def customer_fraud_rate(customer, fraud, prior, strength=2.0):
    sums = np.bincount(customer, weights=fraud)
    counts = np.bincount(customer).astype(np.float64)
    return (sums[customer] + strength * prior) / (counts[customer] + strength)


class ClaimsMLP(L.LightningModule):
    def __init__(self, n_features, pos_weight, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def _loss(self, batch):
        x, y = batch
        pw = torch.tensor(self.hparams.pos_weight, device=x.device)
        return F.binary_cross_entropy_with_logits(self(x), y, pos_weight=pw)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(321)
    g = torch.Generator().manual_seed(321)
    customer, log_amount, days, channel, fraud = make_claims(g)
    rate = customer_fraud_rate(customer, fraud, prior=fraud.mean())
    X = np.column_stack([log_amount, days, np.eye(3)[channel], rate]).astype(np.float32)

    tr, va = next(GroupShuffleSplit(n_splits=1, test_size=0.25, random_state=0).split(X, fraud, groups=customer))
    scaler = StandardScaler().fit(X[tr])
    x_tr = torch.tensor(scaler.transform(X[tr]), dtype=torch.float32)
    x_va = torch.tensor(scaler.transform(X[va]), dtype=torch.float32)
    y_tr = torch.tensor(fraud[tr], dtype=torch.float32)
    y_va = torch.tensor(fraud[va], dtype=torch.float32)
    pos_weight = float((1 - y_tr.mean()) / y_tr.mean())

    model = ClaimsMLP(X.shape[1], pos_weight)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=512))
    model.eval()
    with torch.no_grad():
        auc = roc_auc_score(y_va.numpy(), model(x_va).numpy())
    print(f"SYMPTOM val_auc={auc:.3f} fraud_rate={fraud.mean():.3f} n_claims={len(fraud)}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

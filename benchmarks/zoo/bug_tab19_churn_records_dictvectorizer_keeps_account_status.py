"""Bug: customer-churn classifier on CRM records (list of dicts as exported to JSON: tenure, charges, support calls,
plan / contract / region / payment as strings). The records are turned into a matrix with scikit-learn's
DictVectorizer, which one-hot encodes every string field it finds, after popping the label field `churned`. But the
export also carries `account_status` ("closed" for every churned customer, "active" or "paused" otherwise) that the
analyst had added to the record for a dashboard; DictVectorizer quietly turns it into `account_status=closed`, a
column equal to the label. The MLP learns that one column and nothing about churn drivers, and the validation split
has the same column, so it looks perfect.
Symptom: val acc 1.000 / val loss 0.000 vs 0.717 / 0.557 with `account_status` popped too (the honest number; the
model is useless at scoring time, when no account is closed yet)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.feature_extraction import DictVectorizer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout19"

PLANS = ["basic", "plus", "premium"]
CONTRACTS = ["monthly", "annual", "two_year"]
REGIONS = ["north", "south", "east", "west", "central"]
PAYMENTS = ["card", "bank_transfer", "invoice", "voucher"]


def export_crm_records(n, seed):
    g = torch.Generator().manual_seed(seed)
    tenure = torch.randint(1, 73, (n,), generator=g).float()
    plan = torch.randint(0, 3, (n,), generator=g)
    contract = torch.randint(0, 3, (n,), generator=g)
    region = torch.randint(0, 5, (n,), generator=g)
    payment = torch.randint(0, 4, (n,), generator=g)
    charges = 25 + 30 * plan.float() + 10 * torch.rand(n, generator=g)
    calls = torch.poisson(torch.full((n,), 1.5), generator=g)
    logit = (-0.4 - 0.035 * tenure + 0.55 * calls + 1.3 * (contract == 0).float() - 0.8 * (contract == 2).float()
             + 0.015 * (charges - 55) + 0.6 * (payment == 3).float())
    churned = (torch.rand(n, generator=g) < torch.sigmoid(logit)).long()
    paused = torch.rand(n, generator=g) < 0.15
    records = []
    for i in range(n):
        records.append({
            "customer_id": f"C{100000 + i}",
            "tenure_months": float(tenure[i]),
            "monthly_charges": round(float(charges[i]), 2),
            "support_calls_90d": float(calls[i]),
            "plan": PLANS[plan[i]],
            "contract": CONTRACTS[contract[i]],
            "region": REGIONS[region[i]],
            "payment": PAYMENTS[payment[i]],
            "account_status": "closed" if churned[i] else ("paused" if paused[i] else "active"),
            "churned": int(churned[i]),
        })
    return records


class ChurnMLP(L.LightningModule):
    def __init__(self, n_features, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Dropout(0.1),
                                 nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y), prog_bar=True)
        self.log("val_acc", ((logits > 0).float() == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(1907)
    records = export_crm_records(4000, seed=19)
    labels = [r.pop("churned") for r in records]
    for r in records:
        r.pop("customer_id")
    train_recs, val_recs, y_train, y_val = train_test_split(records, labels, test_size=0.25, random_state=0,
                                                            stratify=labels)
    vec = DictVectorizer(sparse=False)
    X_train = vec.fit_transform(train_recs)
    X_val = vec.transform(val_recs)
    scaler = StandardScaler().fit(X_train)
    X_train = torch.tensor(scaler.transform(X_train), dtype=torch.float32)
    X_val = torch.tensor(scaler.transform(X_val), dtype=torch.float32)
    y_train = torch.tensor(y_train, dtype=torch.float32)
    y_val = torch.tensor(y_val, dtype=torch.float32)
    print(f"{X_train.shape[1]} features: {', '.join(vec.get_feature_names_out()[:6])}, ...")

    train_dl = DataLoader(TensorDataset(X_train, y_train), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(X_val, y_val), batch_size=256)
    model = ChurnMLP(X_train.shape[1])
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

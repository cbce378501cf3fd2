"""Bug: a loan-default MLP on a synthetic customer table (8 static features: income, debt ratio, tenure, ...;
the default label follows a noisy logistic rule of the features, 15 % of labels flipped). The customers to score
are read from the transaction log - `customer_ids = tx_log[:, 0]` - where the user meant the distinct ids
(`np.unique(tx_log[:, 0])`). Every customer is repeated once per transaction (1 to 12 times) with identical
features and label, and the rows are then split 80/20 at random, so most validation customers also sit in the
training rows. The MLP memorises them, and validation accuracy reports memorisation instead of generalisation.
Symptom: val acc 1.00 on the duplicated rows vs 0.67 with distinct customers; on 2000 fresh customers the
leaky model scores 0.65 (the fixed one 0.67), so its validation number is 0.35 too optimistic."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout10"

FEATURES = ["income", "debt_ratio", "tenure_months", "n_cards", "utilisation", "age", "late_payments", "savings"]
TRUE_W = torch.tensor([-1.2, 1.5, -0.6, 0.4, 1.1, -0.3, 1.4, -0.8])


def make_customers(n, generator):
    x = torch.randn(n, len(FEATURES), generator=generator)
    x[:, 0] = x[:, 0] * 18_000 + 52_000          # income in currency units
    x[:, 2] = (x[:, 2] * 30 + 60).clamp(min=1)   # tenure in months
    z = (x - x.mean(0)) / x.std(0)
    logit = z @ TRUE_W + 0.8 * z[:, 1] * z[:, 4] - 0.4
    y = (torch.rand(n, generator=generator) < torch.sigmoid(logit)).long()
    flip = torch.rand(n, generator=generator) < 0.15
    y = torch.where(flip, 1 - y, y)
    return x.numpy(), y.numpy()


def make_transaction_log(n_customers, generator):
    counts = torch.randint(1, 13, (n_customers,), generator=generator)
    cust = torch.repeat_interleave(torch.arange(n_customers), counts)
    amount = torch.rand(len(cust), generator=generator) * 500
    order = torch.randperm(len(cust), generator=generator)
    return torch.stack([cust.double(), amount.double()], 1)[order].numpy()


class DefaultMLP(L.LightningModule):
    def __init__(self, n_in, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(n_in, 256), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(256, 256), nn.ReLU(),
            nn.Linear(256, 2),
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val/loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val/acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2024)
    g = torch.Generator().manual_seed(11)
    cust_x, cust_y = make_customers(900, g)
    tx_log = make_transaction_log(900, g)

    customer_ids = tx_log[:, 0].astype(np.int64)
    x_raw, y = cust_x[customer_ids], cust_y[customer_ids]

    scaler = StandardScaler().fit(x_raw)
    x = torch.tensor(scaler.transform(x_raw), dtype=torch.float32)
    ds = TensorDataset(x, torch.tensor(y))
    n_val = len(ds) // 5
    train_ds, val_ds = random_split(ds, [len(ds) - n_val, n_val], generator=torch.Generator().manual_seed(0))

    model = DefaultMLP(len(FEATURES))
    trainer = L.Trainer(
        max_epochs=25,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="loan_default_tx_log"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(train_ds, batch_size=64, shuffle=True), DataLoader(val_ds, batch_size=256))

    model.eval()
    with torch.no_grad():
        xv, yv = ds.tensors[0][val_ds.indices], ds.tensors[1][val_ds.indices]
        val_acc = (model(xv).argmax(-1) == yv).float().mean()
        fresh_x, fresh_y = make_customers(2000, torch.Generator().manual_seed(99))
        fresh_x = torch.tensor(scaler.transform(fresh_x), dtype=torch.float32)
        fresh_acc = (model(fresh_x).argmax(-1) == torch.tensor(fresh_y)).float().mean()
    print(f"SYMPTOM rows={len(ds)} val_acc={val_acc:.3f} fresh_customers_acc={fresh_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a churn classifier for a subscription product. A LightningDataModule builds a customer table (synthetic,
seeded torch.Generator: tenure, monthly charge, support calls, contract type, weekly usage trend; churn within the
90-day window drawn from a logistic rule of those), standardises it with training statistics in `setup("fit")`,
and an MLP with BCE-with-logits, AdamW, EarlyStopping and ModelCheckpoint on val AUROC (torchmetrics) trains on it.

The feature builder also adds `last_seen_day`, "the last day in the window the customer was active", taken from
the activity log. For customers who churned the log stops at their churn day, for everyone else it is day 90, so
the column is 90 exactly when the label is 0 and below 90 exactly when it is 1: the label is readable from the
input. Training looks excellent (val AUROC 0.999, val accuracy 0.993) but at scoring time the window has not
happened yet, every customer shows last_seen_day = 90, and the model calls nearly everyone loyal. Symptom: accuracy
on a scoring cohort with the column at its pre-window value 0.700 vs 0.785 for the model trained without the
column (which reaches an honest val AUROC of 0.835)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import BinaryAUROC

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout22"
WINDOW = 90


def customer_table(n, g):
    tenure = torch.randint(1, 72, (n,), generator=g).float()
    charge = 20 + 80 * torch.rand(n, generator=g)
    calls = torch.poisson(torch.full((n,), 1.5), generator=g)
    contract = torch.randint(0, 3, (n,), generator=g)  # month-to-month, 1 year, 2 year
    trend = torch.randn(n, generator=g)
    logit = 0.8 - 0.05 * tenure + 0.02 * (charge - 60) + 0.6 * calls - 1.1 * contract - 0.9 * trend
    churn = (torch.rand(n, generator=g) < torch.sigmoid(logit)).float()
    churn_day = torch.randint(1, WINDOW, (n,), generator=g).float()
    last_seen_day = torch.where(churn.bool(), churn_day, torch.full((n,), float(WINDOW)))
    feats = torch.stack([tenure, charge, calls, trend, last_seen_day], 1)
    feats = torch.cat([feats, F.one_hot(contract, 3).float()], 1)
    return feats, churn


class ChurnDataModule(L.LightningDataModule):
    def __init__(self, batch_size=64):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage):
        g = torch.Generator().manual_seed(11)
        x, y = customer_table(3000, g)
        perm = torch.randperm(len(x), generator=g)
        tr, va = perm[:2400], perm[2400:]
        self.mean, self.std = x[tr].mean(0), x[tr].std(0)
        self.train_set = TensorDataset(self.scale(x[tr]), y[tr])
        self.val_set = TensorDataset(self.scale(x[va]), y[va])

    def scale(self, x):
        return (x - self.mean) / self.std

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=300)


class ChurnMLP(L.LightningModule):
    def __init__(self, n_features=8, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 1))
        self.val_auroc = BinaryAUROC()

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_auroc.update(logits, y.long())
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())
        self.log("val_auroc", self.val_auroc)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)


def main():
    L.seed_everything(2201)
    dm = ChurnDataModule()
    model = ChurnMLP()
    callbacks = [EarlyStopping("val_auroc", mode="max", patience=4),
                 ModelCheckpoint(monitor="val_auroc", mode="max")]
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=callbacks + lightning_sanity.default_callbacks())
    trainer.fit(model, dm)
    # scoring cohort: the window lies in the future, so nobody has a churn day yet
    x, y = customer_table(2000, torch.Generator().manual_seed(99))
    x[:, 4] = WINDOW
    model.eval()
    with torch.no_grad():
        acc = ((model(dm.scale(x)) > 0).float() == y).float().mean()
    print(f"SYMPTOM val_auroc={float(trainer.callback_metrics['val_auroc']):.3f} "
          f"val_acc={float(trainer.callback_metrics['val_acc']):.3f} scoring_acc={float(acc):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

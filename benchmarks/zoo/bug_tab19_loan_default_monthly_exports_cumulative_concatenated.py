"""Bug: loan-default classifier on application features. The data arrives as four monthly exports from the loan
system and the analyst concatenates them (`np.concatenate(exports)`) before a shuffled train_test_split. But each
export is cumulative - the March file holds every application since January, not just March's - so the January
applications appear four times, February's three times, and so on: 5000 rows for 2000 distinct applications. After the
random split 83 % of the validation rows are exact copies of training rows, including their (noisy) labels, and a
wide MLP that memorises the training set scores them as if it generalised.
Symptom: val acc 0.949 / val loss 0.30 vs 0.712 / 1.31 when only the latest export (one row per application) is split
(the honest numbers: the same memorising MLP, now scored on applications it has not seen)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout19"


def load_monthly_exports(new_per_month=500, months=4, seed=7):
    """Each export is cumulative: export m holds every application received up to month m."""
    g = torch.Generator().manual_seed(seed)
    n = new_per_month * months
    income = torch.exp(10.5 + 0.5 * torch.randn(n, generator=g))
    amount = income * (0.2 + 0.6 * torch.rand(n, generator=g))
    term = torch.tensor([12.0, 24.0, 36.0, 60.0])[torch.randint(0, 4, (n,), generator=g)]
    age = torch.randint(21, 70, (n,), generator=g).float()
    dti = (0.05 + 0.5 * torch.rand(n, generator=g))
    delinq = torch.poisson(torch.full((n,), 0.4), generator=g)
    util = torch.rand(n, generator=g)
    years_employed = torch.clamp(age - 21, max=30) * torch.rand(n, generator=g)
    other = torch.randn(n, 6, generator=g)
    X = torch.stack([income.log(), amount / income, term, age, dti, delinq, util, years_employed], 1)
    X = torch.cat([X, other], 1)
    logit = (-0.5 + 2.5 * (amount / income - 0.5) + 3.0 * (dti - 0.3) + 0.8 * delinq + 1.5 * (util - 0.5)
             - 0.04 * years_employed + 0.5 * other[:, 0] * other[:, 1])
    y = (logit + 1.2 * torch.randn(n, generator=g) > 0).float()
    return [(X[: new_per_month * (m + 1)].numpy(), y[: new_per_month * (m + 1)].numpy()) for m in range(months)]


class DefaultMLP(L.LightningModule):
    def __init__(self, n_features, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                 nn.Linear(256, 1))

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
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2024)
    exports = load_monthly_exports()
    X = np.concatenate([x for x, _ in exports])
    y = np.concatenate([t for _, t in exports])
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=42, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    to_t = lambda a: torch.tensor(a, dtype=torch.float32)
    train_ds = TensorDataset(to_t(scaler.transform(X_tr)), to_t(y_tr))
    val_ds = TensorDataset(to_t(scaler.transform(X_va)), to_t(y_va))
    print(f"{len(X)} rows ({len(train_ds)} train / {len(val_ds)} val)")

    model = DefaultMLP(X.shape[1])
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, logger=TensorBoardLogger("lightning_logs", name="loan_default"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_ds, batch_size=128, shuffle=True), DataLoader(val_ds, batch_size=512))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

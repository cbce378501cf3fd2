"""Bug: wine cultivar classifier (sklearn wine, 13 lab assays) as a LightningDataModule + MLP, Adam + StepLR. Some
assays are not run on every sample. The training table marks them as NaN and the datamodule's pipeline is
`SimpleImputer(strategy="median")` then `StandardScaler`, both fitted on the training rows. The validation rows come
from the lab's newer export, which writes an assay that was not run as 0.0 instead of leaving the cell empty. The
same fitted pipeline is applied, but `SimpleImputer` only replaces NaN, so the zeros go through as real
measurements: an alcohol of 0 % standardises to about -16, a proline of 0 to about -2.4. Validation inputs are far
outside anything seen in training while the training loss keeps falling.
Why a user writes it: the pipeline is fitted on train and reused on validation exactly as the tutorials say; the
difference is in how the two files encode "missing", which nobody looks at.
Symptom: val acc 0.70 / val loss 12.0 vs 0.96 / 0.08 when the export's zeros are read as missing."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_wine
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout12"

OPTIONAL_ASSAYS = [0, 3, 5, 9, 12]  # alcohol, alcalinity of ash, total phenols, colour intensity, proline


def knock_out(X, rng, rate, fill):
    X = X.copy()
    for col in OPTIONAL_ASSAYS:
        mask = rng.random(len(X)) < rate
        X[mask, col] = fill
    return X


class WineLab(L.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        X, y = load_wine(return_X_y=True)
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, stratify=y, random_state=4)
        rng = np.random.default_rng(4)
        X_tr = knock_out(X_tr, rng, 0.25, np.nan)  # curated table: blank cells
        X_va = knock_out(X_va, rng, 0.25, 0.0)     # lab export: assay not run -> 0.0
        self.prep = make_pipeline(SimpleImputer(strategy="median"), StandardScaler()).fit(X_tr)
        self.train_ds = self._dataset(X_tr, y_tr)
        self.val_ds = self._dataset(X_va, y_va)

    def _dataset(self, X, y):
        X = self.prep.transform(X)
        return TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=64)


class WineMLP(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(13, 64), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(64, 64), nn.ReLU(),
            nn.Linear(64, 3),
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=15, gamma=0.3)]


def main():
    L.seed_everything(8)
    trainer = L.Trainer(
        max_epochs=40,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="wine_lab"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(WineMLP(), datamodule=WineLab())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a breast-cancer classifier whose DataModule reproduces a lab export with ~6% missing measurements
(seeded, missing completely at random) and preprocesses with a scikit-learn pipeline
`SimpleImputer(median) -> PCA(10)`, fitted on the training split only and applied to both splits. The
`StandardScaler` that should come before PCA is missing. The raw columns range from ~0.001 (fractal dimension) to
~2500 (worst area), so the principal components are dominated by the area/perimeter columns and the first one has
a spread of several hundred: the network is fed un-normalised inputs of magnitude 100-3000.

Training "works": there is no leakage and Adam copes with the scale, so the loss goes down and accuracy is
reasonable; the 10 components are dominated by the few large-unit columns, so accuracy is lower than it should be.
Fix: `make_pipeline(SimpleImputer, StandardScaler, PCA)`.
Measured (30 epochs, seed 8): buggy val acc 0.958 / val loss 0.116, first PCA column std 677; fixed val acc 0.979 /
val loss 0.136, first column std 3.5."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout29"


class LabExportDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32, missing_rate=0.06):
        super().__init__()
        self.batch_size = batch_size
        self.missing_rate = missing_rate

    def setup(self, stage=None):
        X, y = load_breast_cancer(return_X_y=True)
        rng = np.random.default_rng(0)
        X[rng.random(X.shape) < self.missing_rate] = np.nan
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=2, stratify=y)
        self.pipe = make_pipeline(SimpleImputer(strategy="median"), PCA(n_components=10, random_state=0))
        Z_tr = self.pipe.fit_transform(X_tr)
        Z_va = self.pipe.transform(X_va)
        self.first_component_std = float(Z_tr[:, 0].std())
        self.train_ds = TensorDataset(torch.tensor(Z_tr, dtype=torch.float32), torch.tensor(y_tr))
        self.val_ds = TensorDataset(torch.tensor(Z_va, dtype=torch.float32), torch.tensor(y_va))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=128)


class TumourMLP(L.LightningModule):
    def __init__(self, n_features=10, hidden=32, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(8)
    dm = LabExportDataModule()
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TumourMLP(), datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f} "
          f"pc1_std={dm.first_component_std:.1f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

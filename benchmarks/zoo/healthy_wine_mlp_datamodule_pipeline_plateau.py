"""Healthy: a tabular MLP on the wine data with a LightningDataModule that does the preprocessing the way a real
project does: stratified split in `setup`, then a scikit-learn `Pipeline` (log1p on the skewed columns through a
`ColumnTransformer`, then `StandardScaler`) fitted on the training rows only and applied to both splits. MLP with
BatchNorm1d and dropout, Adam, `ReduceLROnPlateau` on `val_loss` (per epoch, factor 0.5, patience 3), 40 epochs.
Own metric: val acc 0.96."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout7"

SKEWED = ["malic_acid", "magnesium", "color_intensity", "proline"]


class WineDataModule(L.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        data = load_wine()
        X, y = data.data, data.target
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=4, stratify=y)
        log_cols = [data.feature_names.index(c) for c in SKEWED]
        self.pipe = Pipeline([
            ("log", ColumnTransformer([("log1p", FunctionTransformer(np.log1p), log_cols)], remainder="passthrough")),
            ("scale", StandardScaler()),
        ])
        X_tr = self.pipe.fit_transform(X_tr)
        X_va = self.pipe.transform(X_va)
        self.train_ds = TensorDataset(torch.tensor(X_tr, dtype=torch.float32), torch.tensor(y_tr))
        self.val_ds = TensorDataset(torch.tensor(X_va, dtype=torch.float32), torch.tensor(y_va))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=64)


class WineMLP(L.LightningModule):
    def __init__(self, n_features=13, n_classes=3, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(hidden, n_classes))

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
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(5)
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineMLP(), datamodule=WineDataModule())
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: diabetes progression regression with a DataModule that does the regression-specific chores right.
The continuous target is cut into quintiles (edges from `np.quantile` of the full target, used only to stratify
the split, never as a feature) so train and validation cover the same range of disease progression. Features and
the target are standardised with scalers fitted on the training rows only; the model predicts the standardised
target with a Huber loss (delta 1.0 in standard units) and validation reports MAE back in the original units
through `inverse_transform`. AdamW with a per-step linear warm-up then cosine decay (`LambdaLR`, interval="step").
Own metric: val MAE 48.8 (the target's std is ~77)."""

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout29"


class DiabetesDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        X, y = load_diabetes(return_X_y=True)
        bins = np.digitize(y, np.quantile(y, [0.2, 0.4, 0.6, 0.8]))
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=5, stratify=bins)
        self.x_scaler = StandardScaler().fit(X_tr)
        self.y_scaler = StandardScaler().fit(y_tr[:, None])
        self.train_ds = TensorDataset(torch.tensor(self.x_scaler.transform(X_tr), dtype=torch.float32),
                                      torch.tensor(self.y_scaler.transform(y_tr[:, None]), dtype=torch.float32))
        self.val_ds = TensorDataset(torch.tensor(self.x_scaler.transform(X_va), dtype=torch.float32),
                                    torch.tensor(self.y_scaler.transform(y_va[:, None]), dtype=torch.float32))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=128)


class ProgressionRegressor(L.LightningModule):
    def __init__(self, y_scale, hidden=64, lr=2e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, hidden), nn.SiLU(), nn.Dropout(0.1), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.huber_loss(self(x), y, delta=1.0)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        self.log("val_loss", F.huber_loss(pred, y, delta=1.0))
        self.log("val_mae", (pred - y).abs().mean() * self.hparams.y_scale)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        total = self.trainer.estimated_stepping_batches
        warmup = self.hparams.warmup

        def lr_lambda(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(13)
    dm = DiabetesDataModule()
    dm.setup()
    model = ProgressionRegressor(y_scale=float(dm.y_scaler.scale_[0]))
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    print(f"SYMPTOM val_mae={trainer.callback_metrics['val_mae'].item():.1f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

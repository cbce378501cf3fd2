"""Healthy: a rare-positive screening model (breast-cancer data cut to all 357 benign and 40 malignant cases, ~10 %
positives). A LightningDataModule makes a stratified train/val split, standardises with training statistics and
balances training with a WeightedRandomSampler built correctly: one weight per *sample*, 1 / (count of that
sample's class), drawn with replacement, so training batches are about half positive. Because the network is
trained under a balanced prior, its logits are shifted back to the deployment prior for evaluation (logit +
log(pi / (1 - pi)), the standard prior-shift correction; the balanced prior adds log 1 = 0) before computing val
BCE, AUROC and average precision (torchmetrics); the training loss stays the plain BCE on balanced batches, so
its value at initialisation is ~ln 2 as it should be. Adam with ReduceLROnPlateau on the (prior-corrected) val
loss, LearningRateMonitor, EarlyStopping. Val loss 0.100, AUROC 0.990, AP 0.930."""

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAUROC, BinaryAveragePrecision

import lightning_sanity

EXPECT = None
SPLIT = "heldout22"


class RarePositiveDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage):
        x, y = load_breast_cancer(return_X_y=True)
        y = 1 - y  # 1 = malignant
        rng = np.random.default_rng(7)
        keep = np.concatenate([np.flatnonzero(y == 0), rng.choice(np.flatnonzero(y == 1), 40, replace=False)])
        x_tr, x_va, y_tr, y_va = train_test_split(x[keep], y[keep], test_size=0.3, stratify=y[keep], random_state=7)
        mean, std = x_tr.mean(0), x_tr.std(0)
        self.prior = float(y_tr.mean())
        self.train_set = TensorDataset(torch.tensor((x_tr - mean) / std, dtype=torch.float32),
                                       torch.tensor(y_tr, dtype=torch.float32))
        self.val_set = TensorDataset(torch.tensor((x_va - mean) / std, dtype=torch.float32),
                                     torch.tensor(y_va, dtype=torch.float32))
        counts = np.bincount(y_tr)
        self.sample_weights = torch.tensor(1.0 / counts[y_tr], dtype=torch.double)

    def train_dataloader(self):
        sampler = WeightedRandomSampler(self.sample_weights, num_samples=len(self.sample_weights), replacement=True)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)


class Screener(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(),
                                 nn.Linear(32, 1))
        self.val_metrics = MetricCollection({"auroc": BinaryAUROC(), "ap": BinaryAveragePrecision()},
                                            prefix="val_")

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        prior = self.trainer.datamodule.prior
        logits = self(x) + math.log(prior / (1 - prior))
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.val_metrics.update(logits.sigmoid(), y.long())
        self.log_dict(self.val_metrics)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss", "interval": "epoch"}}


def main():
    L.seed_everything(2212)
    callbacks = [EarlyStopping("val_loss", patience=6), LearningRateMonitor("epoch")]
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=callbacks + lightning_sanity.default_callbacks())
    trainer.fit(Screener(), RarePositiveDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_auroc={float(m['val_auroc']):.3f} "
          f"val_ap={float(m['val_ap']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: a breast-cancer classifier on a deliberately imbalanced version of the sklearn table (all 357 benign
rows, only 60 malignant ones, so 14 % positives). A LightningDataModule draws a stratified train/val split in
`setup("fit")`, fits the standardizer on the training rows only, and balances training with a `WeightedRandomSampler`
whose per-sample weights are the inverse frequency of each row's own class (so the two classes are drawn equally
often; the validation loader is untouched and keeps the real prior). A small MLP with BatchNorm and dropout is
trained under `precision="bf16-mixed"` on CPU with BCE-with-logits on one logit per row, AdamW and a
ReduceLROnPlateau on val_loss configured through `lr_scheduler_config`. torchmetrics AUROC and balanced accuracy
(macro recall) are logged on validation.

Why it is correct: the sampler weights are per sample (not per class), the split is stratified and disjoint, the
standardizer sees only training rows, the loss gets logits and float targets of the same shape, and the plateau
scheduler monitors a metric that exists in every epoch. Measured: val AUROC 0.990, balanced accuracy 0.889, val loss
0.097."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
import torchmetrics
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

import lightning_sanity

EXPECT = None
SPLIT = "heldout26"


class ImbalancedCancerData(L.LightningDataModule):
    def __init__(self, n_malignant=60, batch_size=32):
        super().__init__()
        self.n_malignant, self.batch_size = n_malignant, batch_size

    def setup(self, stage=None):
        x, y = load_breast_cancer(return_X_y=True)
        y = 1 - y  # 1 = malignant
        rng = np.random.default_rng(4)
        keep = np.concatenate([np.flatnonzero(y == 0), rng.choice(np.flatnonzero(y == 1), self.n_malignant, False)])
        x, y = x[keep], y[keep]
        x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.25, stratify=y, random_state=4)
        mean, std = x_tr.mean(0), x_tr.std(0) + 1e-8
        self.train_set = TensorDataset(torch.tensor((x_tr - mean) / std, dtype=torch.float32),
                                       torch.tensor(y_tr, dtype=torch.float32))
        self.val_set = TensorDataset(torch.tensor((x_va - mean) / std, dtype=torch.float32),
                                     torch.tensor(y_va, dtype=torch.float32))
        counts = np.bincount(y_tr)
        self.sample_weights = torch.tensor(1.0 / counts[y_tr], dtype=torch.double)

    def train_dataloader(self):
        sampler = WeightedRandomSampler(self.sample_weights, num_samples=len(self.sample_weights), replacement=True)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=128)


class CancerNet(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
        self.auroc = torchmetrics.AUROC(task="binary")
        self.bal_acc = torchmetrics.Recall(task="multiclass", num_classes=2, average="macro")

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x).float()
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.auroc(logits, y.long())
        self.bal_acc((logits > 0).long(), y.long())
        self.log_dict({"val_auroc": self.auroc, "val_bal_acc": self.bal_acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=4)
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss", "interval": "epoch", "frequency": 1}}


def main():
    L.seed_everything(2026)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, precision="bf16-mixed",
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CancerNet(), datamodule=ImbalancedCancerData())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_auroc={float(m['val_auroc']):.3f} val_bal_acc={float(m['val_bal_acc']):.3f} "
          f"val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

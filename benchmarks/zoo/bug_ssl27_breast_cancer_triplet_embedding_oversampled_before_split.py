"""Bug (split overlap): metric learning on the breast-cancer data. An MLP embeds the 30 standardized features onto
the unit sphere and is trained with a batch-all triplet margin loss plus a cosine-classifier head (the usual
"triplet + softmax" recipe); validation reports the head's cross-entropy and accuracy. Because the malignant class
is the minority, the author balances the classes with `sklearn.utils.resample(..., replace=True)` on the WHOLE
dataset and only then calls `train_test_split`. The bootstrap copies of a malignant tumour land on both sides of
the split, so a good share of the validation rows are exact duplicates of training rows. Nothing crashes and
everything looks great: the validation score is inflated by memorised duplicates.

Measured (seed 21, 20 epochs): this version val_acc=0.989 val_loss=0.073; fixed version (split first, oversample the
training rows only) val_acc=0.965 val_loss=0.170 (on the natural class mix)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils import resample
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout27"


def balanced_data(seed=0):
    X, y = load_breast_cancer(return_X_y=True)
    minority, majority = X[y == 0], X[y == 1]
    up = resample(minority, replace=True, n_samples=len(majority), random_state=seed)
    X_bal = np.concatenate([up, majority])
    y_bal = np.concatenate([np.zeros(len(up), dtype=np.int64), np.ones(len(majority), dtype=np.int64)])
    return X_bal, y_bal


def batch_all_triplet(z, y, margin=0.3):
    d = torch.cdist(z, z)
    same = y[:, None] == y[None, :]
    eye = torch.eye(len(y), dtype=torch.bool)
    pos = same & ~eye
    neg = ~same
    trip = d[:, :, None] - d[:, None, :] + margin  # anchor a, positive p, negative n
    valid = pos[:, :, None] & neg[:, None, :]
    losses = F.relu(trip[valid])
    active = losses > 1e-12
    return losses[active].mean() if active.any() else losses.sum()


class TripletEmbedder(L.LightningModule):
    def __init__(self, n_features=30, dim=16, lr=2e-3, scale=10.0):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                  nn.Linear(64, dim))
        self.proto = nn.Parameter(torch.randn(2, dim) * 0.1)

    def forward(self, x):
        return F.normalize(self.body(x), dim=1)

    def logits(self, z):
        return self.hparams.scale * z @ F.normalize(self.proto, dim=1).T

    def training_step(self, batch, batch_idx):
        x, y = batch
        z = self(x)
        loss = batch_all_triplet(z, y) + F.cross_entropy(self.logits(z), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self.logits(self(x))
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(21)
    X, y = balanced_data()
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=3, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    train = TensorDataset(torch.tensor(scaler.transform(X_tr), dtype=torch.float32), torch.tensor(y_tr))
    val = TensorDataset(torch.tensor(scaler.transform(X_va), dtype=torch.float32), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TripletEmbedder(), DataLoader(train, batch_size=32, shuffle=True, drop_last=True),
                DataLoader(val, batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

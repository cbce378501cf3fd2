"""Bug: a three-view fusion classifier on the breast-cancer data. The 30 features are treated as three "modalities"
of the same biopsy (the 10 nucleus means, their 10 standard errors, the 10 worst values), each with its own small
encoder, fused by concatenation. To fix the class imbalance (212 malignant vs 357 benign) the malignant records are
oversampled with replacement until the classes are balanced, and only then is the table split into train/val. Every
duplicated malignant record can land on both sides of the split: 33% of the val rows (most of the malignant ones)
have an exact copy in the training set, so the val metrics measure memorisation. Training is normal and the val
numbers look better than they are. Measured (12 epochs): val loss 0.038, val acc 0.986 (val set 143 rows, 47 with an
exact copy in train) vs val loss 0.069, val acc 0.982 (114 honest rows) when the split is done first and only the
training rows are oversampled."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout28"

VIEWS = {"mean": slice(0, 10), "se": slice(10, 20), "worst": slice(20, 30)}


def balance_by_oversampling(X, y, rng):
    minority = np.flatnonzero(y == 0)
    extra = rng.choice(minority, size=(y == 1).sum() - len(minority), replace=True)
    idx = np.concatenate([np.arange(len(y)), extra])
    return X[idx], y[idx]


class ThreeViewFusion(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.encoders = nn.ModuleDict({k: nn.Sequential(nn.Linear(10, 16), nn.ReLU()) for k in VIEWS})
        self.head = nn.Sequential(nn.Linear(48, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))

    def forward(self, x):
        return self.head(torch.cat([enc(x[:, VIEWS[k]]) for k, enc in self.encoders.items()], dim=1))

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
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(285)
    X, y = load_breast_cancer(return_X_y=True)
    X, y = balance_by_oversampling(X, y, np.random.default_rng(0))
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=6, stratify=y)
    scaler = StandardScaler().fit(X_tr)

    def ds(X_, y_):
        return TensorDataset(torch.tensor(scaler.transform(X_), dtype=torch.float32), torch.tensor(y_))

    train_dl = DataLoader(ds(X_tr, y_tr), batch_size=32, shuffle=True)
    val_dl = DataLoader(ds(X_va, y_va), batch_size=128)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ThreeViewFusion(), train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

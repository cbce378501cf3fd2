"""Bug: a tabular MLP on the wine data whose DataModule adds a "stacking" feature the way Kaggle notebooks do:
a 1-nearest-neighbour classifier is fitted on the training rows and its one-hot prediction is appended to the
scaled features. The feature is computed with `knn.predict` on the very rows the KNN was fitted on, so for every
training row the nearest neighbour is the row itself and the appended one-hot IS the label (target leakage).
On validation rows it is an honest but weak prediction (KNN on raw, unscaled wine features, ~0.7 accurate).

Training "works": the train loss falls fast because the net can copy the one-hot, and the scaled chemistry
columns still carry enough signal for validation to look fine. The fix is out-of-fold predictions for the training
rows (`cross_val_predict(knn, X_tr, y_tr, cv=5)`).
Measured (40 epochs, seed 11): buggy val acc 0.978 / val loss 0.098; fixed (out-of-fold) val acc 0.978 / val loss
0.043 (the leaked model is over-confident on the noisy KNN column and its val loss is twice as high)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout29"


class WineStackingDataModule(L.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        X, y = load_wine(return_X_y=True)
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=3, stratify=y)
        knn = KNeighborsClassifier(n_neighbors=1).fit(X_tr, y_tr)
        nn_tr = np.eye(3)[knn.predict(X_tr)]
        nn_va = np.eye(3)[knn.predict(X_va)]
        scaler = StandardScaler().fit(X_tr)
        F_tr = np.hstack([scaler.transform(X_tr), nn_tr])
        F_va = np.hstack([scaler.transform(X_va), nn_va])
        self.train_ds = TensorDataset(torch.tensor(F_tr, dtype=torch.float32), torch.tensor(y_tr))
        self.val_ds = TensorDataset(torch.tensor(F_va, dtype=torch.float32), torch.tensor(y_va))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=64)


class StackedMLP(L.LightningModule):
    def __init__(self, n_features=16, n_classes=3, hidden=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
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
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(11)
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(StackedMLP(), datamodule=WineStackingDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

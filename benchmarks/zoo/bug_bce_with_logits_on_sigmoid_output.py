"""Bug: binary classification on sklearn's breast-cancer data where the model ends in `nn.Sigmoid()` (copied
from an older script that used `BCELoss`) but the loss is `BCEWithLogitsLoss`, which applies a second sigmoid:
the effective probabilities are squeezed into (0.5, 0.73), gradients are squashed, and the loss cannot go below
0.31 on positives and 0.69 on negatives. The classifier still ranks, but its loss and calibration are wrong.
MLP, Adam."""

import lightning as L
import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout"


class CancerNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1), nn.Sigmoid())
        self.loss_fn = nn.BCEWithLogitsLoss()  # BUG: the model already outputs probabilities

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        p = self(x)
        self.log("val_loss", self.loss_fn(p, y))
        self.log("val_acc", ((p > 0.5).float() == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(1522)
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.25, random_state=2, stratify=y)
    sc = StandardScaler().fit(Xtr)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CancerNet(), DataLoader(TensorDataset(t(sc.transform(Xtr)), t(ytr)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(t(sc.transform(Xva)), t(yva)), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: binary classification on sklearn's breast-cancer data (standardized) with a 2-logit head and
cross-entropy, Adam with weight decay, and Lightning's EarlyStopping(monitor="val_loss", patience=3) plus
ModelCheckpoint on the best val_loss; max_epochs is 40 but the run stops once validation stops improving."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"


class CancerNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))

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
        return torch.optim.Adam(self.parameters(), lr=1e-3, weight_decay=1e-4)


def main():
    L.seed_everything(2021)
    X, y = load_breast_cancer(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.25, random_state=5, stratify=y)
    sc = StandardScaler().fit(Xtr)
    t = lambda a, dt: torch.tensor(np.asarray(a), dtype=dt)  # noqa: E731
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=[*lightning_sanity.default_callbacks(),
                                                        EarlyStopping(monitor="val_loss", patience=3),
                                                        ModelCheckpoint(monitor="val_loss")])
    trainer.fit(CancerNet(),
                DataLoader(TensorDataset(t(sc.transform(Xtr), torch.float32), t(ytr, torch.long)), batch_size=32,
                           shuffle=True),
                DataLoader(TensorDataset(t(sc.transform(Xva), torch.float32), t(yva, torch.long)), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

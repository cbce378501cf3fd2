"""Bug: regression on sklearn's diabetes with standardized features but the raw target (25..346, mean ~150) and
`nn.HuberLoss(delta=1.0)`: every residual is far beyond delta, so the loss is L1-like with gradients of size 1
and the output bias crawls towards 150 at lr * 1 per step; after the planned epochs the model still predicts far
below the targets. MLP, Adam(lr=1e-3), no bias initialisation."""

import lightning as L
import numpy as np
import torch
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"initial-loss", "loss-trend"}
SPLIT = "heldout"


class HuberRegressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))
        self.loss_fn = nn.HuberLoss(delta=1.0)

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_huber", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        self.log("val_huber", self.loss_fn(pred, y))
        self.log("val_mae", (pred - y).abs().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(1524)
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=3)
    sc = StandardScaler().fit(Xtr)
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(HuberRegressor(), DataLoader(TensorDataset(t(sc.transform(Xtr)), t(ytr)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(t(sc.transform(Xva)), t(yva)), batch_size=128))  # BUG: target not scaled
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

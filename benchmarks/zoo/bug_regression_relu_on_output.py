"""Bug: regression on a standardized target (about half the targets are negative) with a network whose
`nn.Sequential` ends in `nn.ReLU()` after the last Linear (copied from the hidden blocks): the output can never
be negative, and every sample whose pre-activation is negative gets no gradient through the output. Diabetes
dataset, standardized features and target, MSE, Adam."""

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

EXPECT = {"dead-activations", "loss-trend"}
SPLIT = "heldout"


def block(n_in, n_out):
    return [nn.Linear(n_in, n_out), nn.ReLU()]


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(*block(10, 64), *block(64, 32), *block(32, 1))  # BUG: ReLU after the output layer

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(1525)
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=4)
    xs, ys = StandardScaler().fit(Xtr), StandardScaler().fit(ytr.reshape(-1, 1))
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    train = TensorDataset(t(xs.transform(Xtr)), t(ys.transform(ytr.reshape(-1, 1)).ravel()))
    val = TensorDataset(t(xs.transform(Xva)), t(ys.transform(yva.reshape(-1, 1)).ravel()))
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Regressor(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

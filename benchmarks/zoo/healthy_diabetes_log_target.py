"""Healthy: regression on sklearn's diabetes with a log-transformed, standardized target (statistics from the
training split, the same function applied to both splits), standardized features, MSE, Adam."""

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
SPLIT = "heldout"


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))

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
        return torch.optim.Adam(self.parameters(), lr=2e-3)


def main():
    L.seed_everything(2122)
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.2, random_state=8)
    xs = StandardScaler().fit(Xtr)
    log_mean, log_std = np.log(ytr).mean(), np.log(ytr).std()
    target = lambda v: (np.log(v) - log_mean) / log_std  # noqa: E731 - same transform for both splits
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
    train = TensorDataset(t(xs.transform(Xtr)), t(target(ytr)))
    val = TensorDataset(t(xs.transform(Xva)), t(target(yva)))
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Regressor(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

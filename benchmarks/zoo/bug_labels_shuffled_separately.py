"""Bug: the script "shuffles the data" by shuffling the features and the labels with two separate
permutations, so labels no longer belong to their images; the model can only learn the label prior.
Digits MLP, Adam."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-trend", "label-distribution"}


class MLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(42)
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    X = X[rng.permutation(len(X))]  # BUG: two independent permutations
    y = y[rng.permutation(len(y))]
    X = torch.tensor(X / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MLP(), DataLoader(TensorDataset(X[:1500], y[:1500]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(X[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

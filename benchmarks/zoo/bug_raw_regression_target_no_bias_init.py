"""Bug: regression on the raw diabetes target (mean about 152, std about 77) with a default-initialised output
layer: the initial MSE is about 29 000, dominated by the target's mean, and early training is spent only on
learning that offset. Standardized features, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"initial-loss"}


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x).squeeze(1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def main():
    L.seed_everything(0)
    X, y = load_diabetes(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32)
    X = (X - X.mean(0)) / X.std(0)
    y = torch.tensor(y, dtype=torch.float32)  # BUG (no standardisation, no bias init)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Regressor(), DataLoader(TensorDataset(X[:350], y[:350]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X[350:], y[350:]), batch_size=100))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

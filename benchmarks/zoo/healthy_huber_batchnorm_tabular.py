"""Healthy: tabular regression on diabetes (standardized features and target) with BatchNorm1d between Linear
layers, small batches of 16, drop_last=True, Huber loss, AdamW."""

import lightning as L
import torch
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class TabularNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                 nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 1))
        self.loss = nn.HuberLoss(delta=1.0)

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss(self(x), y)
        self.log("train_huber", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_huber", self.loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3, weight_decay=1e-2)


def main():
    L.seed_everything(23)
    X, y = load_diabetes(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    tr, va = perm[:352], perm[352:]
    X = (X - X[tr].mean(0)) / X[tr].std(0)
    y = (y - y[tr].mean()) / y[tr].std()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TabularNet(), DataLoader(TensorDataset(X[tr], y[tr]), batch_size=16, shuffle=True, drop_last=True),
                DataLoader(TensorDataset(X[va], y[va]), batch_size=90))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

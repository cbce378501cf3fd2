"""Healthy: heteroscedastic regression on the diabetes data (standardised features and target): the network
predicts a mean and a log-variance per patient and is trained with F.gaussian_nll_loss, the usual way to get
calibrated uncertainty. MLP, Adam, a few epochs."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class MeanVariance(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.mean = nn.Linear(64, 1)
        self.log_var = nn.Linear(64, 1)

    def forward(self, x):
        h = self.body(x)
        return self.mean(h).squeeze(-1), self.log_var(h).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        mean, log_var = self(x)
        loss = F.gaussian_nll_loss(mean, y, log_var.exp())
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        mean, log_var = self(x)
        self.log("val_nll", F.gaussian_nll_loss(mean, y, log_var.exp()))
        self.log("val_mse", F.mse_loss(mean, y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(4)
    d = load_diabetes()
    x = torch.tensor(d.data, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.float32)
    x, y = (x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, val = perm[:350], perm[350:]
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MeanVariance(), DataLoader(TensorDataset(x[train], y[train]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[val], y[val]), batch_size=100))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

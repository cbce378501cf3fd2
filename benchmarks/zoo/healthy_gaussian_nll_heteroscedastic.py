"""Healthy: heteroscedastic regression with `nn.GaussianNLLLoss`: the network predicts a mean and a variance
(softplus + 1e-4) for y = sin(3x) + noise whose standard deviation grows with |x| (synthetic, seeded
torch.Generator). Adam, ReduceLROnPlateau monitoring val_nll."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"


def noisy_sine(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g) * 4 - 2
    y = torch.sin(3 * x) + (0.05 + 0.3 * x.abs()) * torch.randn(n, 1, generator=g)
    return x, y.squeeze(1)


class MeanVarianceNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh())
        self.mean = nn.Linear(64, 1)
        self.var = nn.Linear(64, 1)
        self.nll = nn.GaussianNLLLoss()

    def forward(self, x):
        h = self.body(x)
        return self.mean(h).squeeze(-1), F.softplus(self.var(h)).squeeze(-1) + 1e-4

    def training_step(self, batch, batch_idx):
        x, y = batch
        mu, var = self(x)
        loss = self.nll(mu, y, var)
        self.log("train_nll", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        mu, var = self(x)
        self.log("val_nll", self.nll(mu, y, var))
        self.log("val_mse", F.mse_loss(mu, y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_nll"}}


def main():
    L.seed_everything(1502)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MeanVarianceNet(), DataLoader(TensorDataset(*noisy_sine(2000, 0)), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*noisy_sine(400, 1)), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

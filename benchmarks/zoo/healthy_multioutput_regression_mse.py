"""Healthy: multi-output regression (3 targets of different scales, each standardized on the training split) from
12 features through a nonlinear synthetic rule plus noise; MLP with SiLU, MSE averaged over targets, SGD with
momentum and CosineAnnealingLR per epoch. Validation reports the MSE next to the predict-the-mean baseline (1.0
per target after standardization)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
EPOCHS = 10
W = torch.randn(12, 3, generator=torch.Generator().manual_seed(31))


def data(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    y = torch.stack([torch.sin(x @ W[:, 0]), (x @ W[:, 1]) ** 2 / 10, torch.tanh(x @ W[:, 2]) * 100], dim=1)
    return x, y + 0.05 * y.std(0) * torch.randn(n, 3, generator=g)


class MultiRegressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(12, 128), nn.SiLU(), nn.Linear(128, 64), nn.SiLU(), nn.Linear(64, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=EPOCHS)]


def main():
    L.seed_everything(2031)
    xtr, ytr = data(3000, 0)
    xva, yva = data(500, 1)
    mean, std = ytr.mean(0), ytr.std(0)
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MultiRegressor(), DataLoader(TensorDataset(xtr, (ytr - mean) / std), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(xva, (yva - mean) / std), batch_size=250))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

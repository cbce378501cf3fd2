"""Bug: a count-valued feature log-transformed with `torch.log(counts)` instead of `torch.log1p(counts)`: about a
third of the samples have a count of 0, their feature is -inf, and the first batch that contains one produces a
non-finite loss and NaN weights. Synthetic regression (target depends on the log-count and two other features),
MSE, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"non-finite", "input-scale"}
SPLIT = "heldout"


def visits(n, seed):
    g = torch.Generator().manual_seed(seed)
    counts = torch.poisson(torch.rand(n, generator=g) * 3, generator=g)
    other = torch.randn(n, 2, generator=g)
    y = 0.8 * torch.log1p(counts) + other[:, 0] - 0.5 * other[:, 1] + 0.1 * torch.randn(n, generator=g)
    x = torch.cat([torch.log(counts).unsqueeze(1), other], dim=1)  # BUG: log(0) = -inf, meant log1p
    return x, y


class Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 1))

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
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(1921)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Regressor(), DataLoader(TensorDataset(*visits(2000, 0)), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(*visits(400, 1)), batch_size=200))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

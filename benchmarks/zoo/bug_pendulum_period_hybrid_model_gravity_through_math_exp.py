"""Bug: a physics-informed (grey-box) regression of measured pendulum periods from a lander on an unknown planet.
The model is the large-amplitude period formula T = 2*pi*sqrt(L/g) * (1 + theta^2/16 + 11*theta^4/3072) with the
planet's gravity as a learnable parameter `log_g` (initialised at log 1.0), times a bounded neural correction
(1 + 0.1 * tanh(mlp)) for pivot friction and bob size. Two parameter groups: the physical constant at lr 0.05,
the MLP at 1e-3 with weight decay; ReduceLROnPlateau on val loss.

`forward` computes `g = math.exp(self.log_g)`. `math.exp` accepts the one-element tensor and returns a Python
float, so g is a constant: `log_g` never gets a gradient (its `.grad` stays None) and gravity stays at 1.0 m/s^2
while the true value is 3.7. The bounded correction can only absorb +-10 %, so the fit stalls with a large error.
Symptom: val MAE 2.38 s and learned g 1.00 vs val MAE 0.019 s and g 3.58 with `g = torch.exp(self.log_g)`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout17"
G_TRUE = 3.71


def swings(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    length = 0.2 + 1.8 * torch.rand(n, generator=g)  # m
    theta = 0.05 + 1.0 * torch.rand(n, generator=g)  # rad
    bob = 0.01 + 0.05 * torch.rand(n, generator=g)  # bob radius, m
    friction = 0.02 * torch.rand(n, generator=g)
    t0 = 2 * math.pi * torch.sqrt(length / G_TRUE)
    period = t0 * (1 + theta**2 / 16 + 11 * theta**4 / 3072) * (1 + 0.4 * bob**2 / length**2) * (1 + friction)
    period = period + 0.005 * torch.randn(n, generator=g)
    return torch.stack([length, theta, bob, friction], 1), period


class GreyBoxPendulum(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.log_g = nn.Parameter(torch.tensor(0.0))
        self.correction = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 1))

    def forward(self, x):
        length, theta = x[:, 0], x[:, 1]
        g = math.exp(self.log_g)
        base = 2 * math.pi * torch.sqrt(length / g) * (1 + theta**2 / 16 + 11 * theta**4 / 3072)
        return base * (1 + 0.1 * torch.tanh(self.correction(x).squeeze(-1)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        self.log("val_loss", F.mse_loss(pred, y))
        self.log("val_mae", (pred - y).abs().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW([
            {"params": [self.log_g], "lr": 0.05, "weight_decay": 0.0},
            {"params": self.correction.parameters(), "lr": 1e-3, "weight_decay": 1e-4},
        ])
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(1969)
    x, y = swings(1200, seed=4)
    train = TensorDataset(x[:1000], y[:1000])
    val = TensorDataset(x[1000:], y[1000:])
    model = GreyBoxPendulum()
    trainer = L.Trainer(
        max_epochs=30,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="pendulum"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=200))
    print(f"SYMPTOM val_mae_s={trainer.callback_metrics['val_mae']:.4f} learned_g={model.log_g.exp().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

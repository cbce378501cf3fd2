"""Healthy: one-step-ahead forecasting of noisy sums of sinusoids with random frequencies and phases (synthetic,
seeded torch.Generator) by a 1-D CNN over the last 48 values, with `nn.HuberLoss(delta=1.0)` on standardized
values (a few outlier spikes are injected into the targets, the reason for Huber). AdamW with OneCycleLR per
step; validation reports MAE next to the persistence baseline (predict the last value)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout"
WINDOW, EPOCHS = 48, 6


def windows(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(WINDOW + 1).float()
    freq = 0.05 + 0.3 * torch.rand(n, 2, 1, generator=g)
    phase = 6.28 * torch.rand(n, 2, 1, generator=g)
    series = torch.sin(freq * t + phase).sum(1) + 0.1 * torch.randn(n, WINDOW + 1, generator=g)
    spikes = (torch.rand(n, generator=g) < 0.02) * 5.0 * torch.randn(n, generator=g)
    return series[:, :WINDOW].unsqueeze(1), series[:, WINDOW] + spikes


class Forecaster(L.LightningModule):
    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.net = nn.Sequential(nn.Conv1d(1, 16, 5, padding=2), nn.GELU(), nn.Conv1d(16, 16, 5, padding=2), nn.GELU(),
                                 nn.Flatten(), nn.Linear(16 * WINDOW, 1))
        self.loss_fn = nn.HuberLoss(delta=1.0)

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_huber", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mae", (self(x) - y).abs().mean())
        self.log("val_mae_persistence", (x[:, 0, -1] - y).abs().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=EPOCHS * self.steps_per_epoch)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2023)
    train = DataLoader(TensorDataset(*windows(3000, 0)), batch_size=64, shuffle=True)
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Forecaster(len(train)), train, DataLoader(TensorDataset(*windows(500, 1)), batch_size=250))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

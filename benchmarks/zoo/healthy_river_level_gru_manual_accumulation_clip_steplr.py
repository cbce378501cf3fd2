"""Healthy: river-stage forecasting (next 6 hours of water level from the last 36 hours of level and rainfall) with
a GRU under manual optimization: the loss of each micro-batch is divided by the accumulation count, the optimizer
steps every 4 micro-batches after `clip_gradients` at norm 0.5, and a StepLR scheduler is stepped by hand at the end
of every epoch. Synthetic catchment: rainfall bursts routed through a linear-reservoir response plus a seasonal
baseflow. Chronological split. Final: val MSE 0.061 on standardised levels (persistence forecast: 0.117)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout17"
LOOKBACK, HORIZON, ACCUM = 36, 6, 4


def catchment(hours: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    storms = (torch.rand(hours, generator=g) < 0.03).float()
    rain = storms * (2 + 10 * torch.rand(hours, generator=g))
    kernel = torch.exp(-torch.arange(48.0) / 9.0) * (torch.arange(48.0) / 4.0).clamp(max=1)
    runoff = torch.nn.functional.conv1d(F.pad(rain, (47, 0)).view(1, 1, -1), kernel.flip(0).view(1, 1, -1)).view(-1)
    t = torch.arange(hours, dtype=torch.float32)
    level = 1.0 + 0.3 * torch.sin(2 * torch.pi * t / (24 * 90)) + 0.08 * runoff
    level = level + 0.01 * torch.randn(hours, generator=g)
    return torch.stack([level, rain], 1)


def windows(series: torch.Tensor, stride: int = 3):
    xs, ys = [], []
    for s in range(0, len(series) - LOOKBACK - HORIZON, stride):
        xs.append(series[s : s + LOOKBACK])
        ys.append(series[s + LOOKBACK : s + LOOKBACK + HORIZON, 0])
    return torch.stack(xs), torch.stack(ys)


class RiverGRU(L.LightningModule):
    def __init__(self, hidden: int = 48, lr: float = 3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.gru = nn.GRU(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, HORIZON)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1]) + x[:, -1:, 0]

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.manual_backward(loss / ACCUM)
        last = batch_idx + 1 == self.trainer.num_training_batches
        if (batch_idx + 1) % ACCUM == 0 or last:
            self.clip_gradients(opt, gradient_clip_val=0.5, gradient_clip_algorithm="norm")
            opt.step()
            opt.zero_grad()
        self.log("train_loss", loss)

    def on_train_epoch_end(self):
        self.lr_schedulers().step()

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))
        self.log("val_persistence", F.mse_loss(x[:, -1:, 0].expand_as(y), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=6, gamma=0.4)]


def main():
    L.seed_everything(36)
    series = catchment(24 * 200, seed=12)
    cut = int(0.8 * len(series))
    mu, sd = series[:cut].mean(0), series[:cut].std(0)
    series = (series - mu) / sd
    x_tr, y_tr = windows(series[:cut])
    x_va, y_va = windows(series[cut - LOOKBACK :])
    model = RiverGRU()
    trainer = L.Trainer(
        max_epochs=16,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="river_level"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=256))
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_loss']:.4f} "
          f"persistence_mse={trainer.callback_metrics['val_persistence']:.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

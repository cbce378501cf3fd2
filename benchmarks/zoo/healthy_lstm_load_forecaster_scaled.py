"""Healthy: next-hour electricity load forecasting (synthetic feeders: a base load of 1500-5000 kW, daily and weekly
cycles, noise) with an LSTM over the last 24 hourly readings. Inputs and targets are standardised with the mean and
standard deviation of the training feeders. Tuple batches (window (B, 24, 1), target (B,)); MSE in standard units,
Adam, ExponentialLR(0.8) per epoch. Reaches val MSE 0.0125 (standard units; persistence 0.037)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout3"
WINDOW, HOURS = 24, 24 * 14


def feeders(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(HOURS, dtype=torch.float32)
    base = 1500 + 3500 * torch.rand(n, 1, generator=g)
    daily = 0.3 * base * torch.sin(6.283 * t / 24 + 6.283 * torch.rand(n, 1, generator=g))
    weekly = 0.1 * base * torch.sin(6.283 * t / 168)
    return base + daily + weekly + 0.03 * base * torch.randn(n, HOURS, generator=g)


def windows(load, stride=5):
    idx = torch.arange(0, HOURS - WINDOW, stride)
    x = torch.stack([load[:, i:i + WINDOW] for i in idx], 1).reshape(-1, WINDOW)
    y = torch.stack([load[:, i + WINDOW] for i in idx], 1).reshape(-1)
    return x, y


class LoadLSTM(L.LightningModule):
    def __init__(self, hidden=32, lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.head(self.lstm(x)[0][:, -1]).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.8)]


def main():
    L.seed_everything(60)
    train_x, train_y = windows(feeders(40, 0))
    val_x, val_y = windows(feeders(10, 1))
    mean, std = train_x.mean(), train_x.std()
    scale = lambda v: (v - mean) / std  # noqa: E731
    train = DataLoader(TensorDataset(scale(train_x).unsqueeze(-1), scale(train_y)), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(scale(val_x).unsqueeze(-1), scale(val_y)), batch_size=500)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LoadLSTM(), train, val)
    persistence = F.mse_loss(scale(val_x[:, -1]), scale(val_y))
    print(f"val_mse={float(trainer.callback_metrics['val_mse']):.4f} persistence_mse={float(persistence):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

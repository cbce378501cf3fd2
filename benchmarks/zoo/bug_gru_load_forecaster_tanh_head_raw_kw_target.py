"""Bug: a GRU next-hour electricity-load forecaster. The head ends in `nn.Tanh()`, written when the targets were
min-max scaled to [-1, 1]; the data code was later changed to feed the target in raw kW (about 150-450) while the
inputs stay standardised. The tanh saturates at 1 kW: MSE stays near the targets' second moment (~1e5), the loss
never reaches the constant-prediction baseline (the variance, ~4e3) and the output units sit at the tanh limit. Val
MAE 287.2 kW vs 5.8 kW with the target scaled to [-1, 1] as the head expects (same model, inverse-transformed). 48
past hours of `[load, sin(hour), cos(hour)]`, split by time, Adam, `limit_train_batches`."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"loss-trend", "dead-activations"}
SPLIT = "heldout5"
HOURS, PAST, CUT = 24 * 120, 48, 24 * 100


def load_curve(seed=0):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(HOURS, dtype=torch.float32)
    hour = t % 24
    daily = 80 * torch.sin(2 * torch.pi * (hour - 7) / 24) + 30 * torch.sin(4 * torch.pi * hour / 24)
    weekly = -40 * ((t // 24) % 7 >= 5).float()
    noise = torch.zeros(HOURS)
    eps = 6 * torch.randn(HOURS, generator=g)
    for i in range(1, HOURS):
        noise[i] = 0.9 * noise[i - 1] + eps[i]
    return 300 + daily + weekly + noise, hour


def make_windows(load, hour, lo, hi, mean, std):
    feats = torch.stack([(load - mean) / std, torch.sin(2 * torch.pi * hour / 24), torch.cos(2 * torch.pi * hour / 24)], -1)
    idx = torch.arange(max(lo, PAST), hi)
    x = torch.stack([feats[i - PAST:i] for i in idx])
    return TensorDataset(x, load[idx])  # target in kW


class GRUForecaster(L.LightningModule):
    def __init__(self, dim=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(3, dim, batch_first=True)
        self.head = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, 1), nn.Tanh())

    def forward(self, x):
        out, _ = self.gru(x)
        return self.head(out[:, -1]).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        self.log("val_loss", F.mse_loss(pred, y))
        self.log("val_mae_kw", (pred - y).abs().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(5107)
    load, hour = load_curve()
    mean, std = load[:CUT].mean(), load[:CUT].std()
    train = make_windows(load, hour, 0, CUT, mean, std)
    val = make_windows(load, hour, CUT, HOURS, mean, std)
    trainer = L.Trainer(max_epochs=8, limit_train_batches=30, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GRUForecaster(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=512))
    print(f"val_mae_kw={float(trainer.callback_metrics['val_mae_kw']):.1f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

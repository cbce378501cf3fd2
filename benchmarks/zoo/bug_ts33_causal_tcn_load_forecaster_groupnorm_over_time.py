"""Bug: a causal dilated TCN forecasts the next hour of electricity load at every position of a 96-hour window
(sequence-to-sequence next-step training; inputs: scaled load plus known hour-of-day and temperature covariates for the
target hour). The convolutions are causal (left padding of (k-1)*dilation), but each residual block normalises its
conv output with `nn.GroupNorm(4, channels)`, a normalisation that is "batch-size independent, so safer than
BatchNorm". On a (batch, channels, time) tensor GroupNorm takes its mean and variance over the channels of a group AND
over all time steps, so the normalised activation at hour t depends on every later hour of the window, including the
loads that are the targets of the earlier positions.

Why training still "works": the loss falls smoothly, the forecasts look good and validation improves alongside; the
future simply reaches each position through the window statistics. Measured against the fixed version (LayerNorm over
channels at each time step, applied on (batch, time, channels)): val MSE 0.0085 with the bug vs 0.0103 fixed (train
0.0089 vs 0.0100), an optimistic forecast error that the model cannot reach when it forecasts from the past only."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout33"
WINDOW = 96


def simulate(n_hours, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n_hours, dtype=torch.float32)
    temp = 12 + 8 * torch.sin(2 * torch.pi * (t - 200) / (24 * 30)) + 4 * torch.sin(2 * torch.pi * (t - 9) / 24)
    temp = temp + torch.cumsum(0.3 * torch.randn(n_hours, generator=g), 0) * 0.1
    daily = 1 + 0.5 * torch.sin(2 * torch.pi * (t - 7) / 24) + 0.3 * torch.sin(4 * torch.pi * (t - 3) / 24)
    ar = torch.zeros(n_hours)
    eps = 0.08 * torch.randn(n_hours, generator=g)
    for i in range(1, n_hours):
        ar[i] = 0.9 * ar[i - 1] + eps[i]
    load = 50 * daily + 1.5 * (temp - 15).abs() + 20 * ar
    return t, temp, load


def make_windows(t, temp, load, mean, std):
    z = (load - mean) / std
    hour = 2 * torch.pi * ((t + 1) % 24) / 24  # covariates of the hour being forecast (known in advance)
    feats = torch.stack([z[:-1], torch.sin(hour[:-1]), torch.cos(hour[:-1]), (temp[1:] - 15) / 8], -1)
    target = z[1:]
    starts = range(0, len(target) - WINDOW + 1, 12)
    x = torch.stack([feats[s:s + WINDOW] for s in starts])
    y = torch.stack([target[s:s + WINDOW] for s in starts])
    return TensorDataset(x, y)


class Block(nn.Module):
    def __init__(self, c, dilation, k=3):
        super().__init__()
        self.pad = (k - 1) * dilation
        self.conv = nn.Conv1d(c, c, k, dilation=dilation)
        self.norm = nn.GroupNorm(4, c)

    def forward(self, x):  # (batch, channels, time)
        return x + F.gelu(self.norm(self.conv(F.pad(x, (self.pad, 0)))))


class TCNForecaster(L.LightningModule):
    def __init__(self, n_in=4, c=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inp = nn.Conv1d(n_in, c, 1)
        self.blocks = nn.Sequential(*[Block(c, d) for d in (1, 2, 4, 8, 16)])
        self.out = nn.Conv1d(c, 1, 1)

    def forward(self, x):
        return self.out(self.blocks(self.inp(x.transpose(1, 2)))).squeeze(1)

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch[0]), batch[1])
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_mse", F.mse_loss(self(batch[0]), batch[1]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)}


def main():
    L.seed_everything(3303)
    t, temp, load = simulate(24 * 300, seed=33)
    cut = 24 * 240
    mean, std = load[:cut].mean(), load[:cut].std()
    train = make_windows(t[:cut], temp[:cut], load[:cut], mean, std)
    val = make_windows(t[cut:], temp[cut:], load[cut:], mean, std)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TCNForecaster(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=64))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mse={float(m['val_mse']):.4f} train_mse={float(m['train_mse']):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

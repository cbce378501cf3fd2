"""Bug: a small WaveNet-style next-sample forecaster for single-lead ECG (synthetic: P-QRS-T beat templates at a
per-record heart rate with jitter, baseline wander and noise, 256 samples at ~100 Hz). Inputs are x[:, :-1], the
targets are x[:, 1:], so position t must predict sample t+1 from samples <= t. The `CausalConv1d` helper pads
both sides with `padding=(k-1)*dilation` and then drops the surplus, but it trims the *front*
(`out[..., self.pad:]`) instead of the back (`out[..., :-self.pad]`). Each output then covers inputs t .. t+pad,
which includes sample t+1, the very value it must predict. The loss falls quickly and to a very low value;
nothing crashes. Measured (same seed, 6 epochs): val MSE 0.0004 with the bug vs 0.0060 with
`out[..., :-self.pad]` (train MSE 0.0004 vs 0.0064)."""

import lightning as L
import math
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout28"

T = 257


def make_ecg(n=600, seed=4):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T).float()
    rr = 60 + 40 * torch.rand(n, 1, generator=g)  # samples between beats
    phase = torch.rand(n, 1, generator=g) * rr
    pos = torch.remainder(t - phase, rr)  # samples since last beat onset
    wave = (0.15 * torch.exp(-((pos - 10) ** 2) / 12) + 1.0 * torch.exp(-((pos - 25) ** 2) / 2)
            - 0.25 * torch.exp(-((pos - 28) ** 2) / 2) + 0.3 * torch.exp(-((pos - 45) ** 2) / 40))
    wander = 0.1 * torch.sin(2 * math.pi * t / 200 + 6 * torch.rand(n, 1, generator=g))
    x = wave + wander + 0.02 * torch.randn(n, T, generator=g)
    return x.unsqueeze(1)


class CausalConv1d(nn.Module):
    def __init__(self, c_in, c_out, kernel_size, dilation=1):
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel_size, padding=self.pad, dilation=dilation)

    def forward(self, x):
        out = self.conv(x)
        return out[..., self.pad:]


class ECGForecaster(L.LightningModule):
    def __init__(self, channels=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inp = CausalConv1d(1, channels, 3)
        self.blocks = nn.ModuleList([CausalConv1d(channels, channels, 3, dilation=d) for d in (1, 2, 4, 8)])
        self.out = nn.Conv1d(channels, 1, 1)

    def forward(self, x):
        h = self.inp(x)
        for block in self.blocks:
            h = h + F.gelu(block(h))
        return self.out(h)

    def training_step(self, batch, batch_idx):
        (x,) = batch
        loss = F.mse_loss(self(x[..., :-1]), x[..., 1:])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        (x,) = batch
        self.log("val_loss", F.mse_loss(self(x[..., :-1]), x[..., 1:]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2)
    x = make_ecg()
    train = DataLoader(TensorDataset(x[:480]), batch_size=32, shuffle=True, drop_last=True)
    val = DataLoader(TensorDataset(x[480:]), batch_size=120)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ECGForecaster(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mse={m['val_loss'].item():.4f} train_mse={m['train_loss_epoch'].item():.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

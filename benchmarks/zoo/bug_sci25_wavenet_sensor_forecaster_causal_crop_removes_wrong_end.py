"""Bug: a small WaveNet-style next-step forecaster for vibration-sensor traces. Each series is a sum of two
drifting sinusoids with AR(1) noise (seeded torch.Generator); windows of 96 samples, the model reads x[0..94]
and predicts x[1..95] at every position (teacher-forced next-step MSE), with dilated causal convolutions
(dilations 1, 2, 4, 8), residual connections, Adam and a OneCycle schedule.

The causal convolution is written the usual way, `nn.Conv1d(..., padding=(k - 1) * dilation)` followed by a
crop of the extra `pad` samples, but the crop is `out[..., pad:]` instead of `out[..., :-pad]`. Padding is
symmetric, so keeping the right end makes output t a function of inputs t..t+pad: every layer looks into the
future, and output t can read x[t+1], the very value it predicts. The teacher-forced loss collapses and looks
superb. Symptom: teacher-forced val MSE 0.007 with the bug vs 0.195 fixed, but an honest one-step forecast of
the sample after the window (no future input available) has MSE 0.589 with the bug vs 0.180 fixed.
"""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout25"
WINDOW = 96


def sensor_windows(n, g):
    t = torch.arange(WINDOW + 1).float()
    f1 = 0.05 + 0.1 * torch.rand(n, 1, generator=g)
    f2 = 0.15 + 0.2 * torch.rand(n, 1, generator=g)
    ph = 2 * math.pi * torch.rand(n, 2, generator=g)
    a = 0.5 + torch.rand(n, 2, generator=g)
    x = (a[:, :1] * torch.sin(2 * math.pi * f1 * t + ph[:, :1])
         + 0.6 * a[:, 1:] * torch.sin(2 * math.pi * f2 * t + ph[:, 1:]))
    eps = torch.randn(n, WINDOW + 1, generator=g) * 0.15
    noise = torch.zeros_like(eps)
    for i in range(1, WINDOW + 1):
        noise[:, i] = 0.7 * noise[:, i - 1] + eps[:, i]
    return x + noise


class CausalConv(nn.Module):
    def __init__(self, ch, dilation, k=3):
        super().__init__()
        self.pad = (k - 1) * dilation
        self.conv = nn.Conv1d(ch, 2 * ch, k, dilation=dilation, padding=self.pad)
        self.proj = nn.Conv1d(ch, ch, 1)

    def forward(self, x):
        out = self.conv(x)[..., self.pad:]
        a, b = out.chunk(2, 1)
        return x + self.proj(torch.tanh(a) * torch.sigmoid(b))


class WaveNetForecaster(L.LightningModule):
    def __init__(self, ch=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inp = nn.Conv1d(1, ch, 1)
        self.blocks = nn.Sequential(*[CausalConv(ch, d) for d in (1, 2, 4, 8)])
        self.out = nn.Conv1d(ch, 1, 1)

    def forward(self, x):
        return self.out(self.blocks(self.inp(x.unsqueeze(1)))).squeeze(1)

    def training_step(self, batch, batch_idx):
        (w,) = batch
        loss = F.mse_loss(self(w[:, :-2]), w[:, 1:-1])
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        (w,) = batch
        self.log("val_loss", F.mse_loss(self(w[:, :-2]), w[:, 1:-1]))
        # honest forecast of the sample after the window: only the past is available
        self.log("val_next_mse", F.mse_loss(self(w[:, :-1])[:, -1], w[:, -1]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2025)
    g = torch.Generator().manual_seed(4)
    train, val = sensor_windows(2000, g), sensor_windows(400, g)
    model = WaveNetForecaster()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_teacher_forced_mse={float(m['val_loss']):.3f} val_next_step_mse={float(m['val_next_mse']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

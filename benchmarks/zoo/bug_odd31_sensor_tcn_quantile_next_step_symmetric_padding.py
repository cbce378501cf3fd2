"""Bug: next-step probabilistic forecaster for noisy sensor traces. Each synthetic sequence is a sum of two damped
oscillations plus an AR(1) disturbance; a small temporal conv net reads the sequence and, at every position t,
predicts the 10/50/90% quantiles of the value at t+1, trained with the pinball (quantile) loss on inputs
`x[:, :-1]` and targets `x[:, 1:]`. Validation uses whole held-out sequences. The mistake: the conv layers use
`padding=kernel_size // 2` ("same" padding) instead of left padding, so the receptive field of position t reaches
t+1 and t+2 -- the very value it is asked to forecast. Training converges fast and validation looks great because
the held-out sequences leak the same way; a real forecaster, which has no future inputs, can not do this.
Measured: buggy val pinball 0.013 (10-90% coverage 0.64); with causal left padding val pinball 0.122 (coverage 0.80)."""

import math

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout31"

QUANTILES = (0.1, 0.5, 0.9)


def make_traces(n, length, gen):
    t = torch.arange(length, dtype=torch.float32)
    f = 0.05 + 0.15 * torch.rand(n, 2, 1, generator=gen)
    ph = 2 * math.pi * torch.rand(n, 2, 1, generator=gen)
    amp = 0.5 + torch.rand(n, 2, 1, generator=gen)
    signal = (amp * torch.sin(2 * math.pi * f * t + ph)).sum(1)
    eps = 0.3 * torch.randn(n, length, generator=gen)
    ar = torch.zeros(n, length)
    for i in range(1, length):
        ar[:, i] = 0.7 * ar[:, i - 1] + eps[:, i]
    return signal + ar


class QuantileTCN(L.LightningModule):
    def __init__(self, channels=32, kernel_size=5, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        pad = kernel_size // 2
        self.net = nn.Sequential(
            nn.Conv1d(1, channels, kernel_size, padding=pad), nn.GELU(),
            nn.Conv1d(channels, channels, kernel_size, padding=pad), nn.GELU(),
            nn.Conv1d(channels, len(QUANTILES), 1))
        self.register_buffer("q", torch.tensor(QUANTILES))

    def forward(self, x):
        return self.net(x.unsqueeze(1)).transpose(1, 2)  # (B, T, Q)

    def pinball(self, pred, target):
        diff = target.unsqueeze(-1) - pred
        return torch.maximum(self.q * diff, (self.q - 1) * diff).mean()

    def training_step(self, batch, batch_idx):
        (seq,) = batch
        loss = self.pinball(self(seq[:, :-1]), seq[:, 1:])
        self.log("train_pinball", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        (seq,) = batch
        pred, target = self(seq[:, :-1]), seq[:, 1:]
        self.log("val_pinball", self.pinball(pred, target))
        inside = (target >= pred[..., 0]) & (target <= pred[..., 2])
        self.log("val_coverage", inside.float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(13)
    gen = torch.Generator().manual_seed(13)
    traces = make_traces(400, 65, gen)
    train = DataLoader(TensorDataset(traces[:320]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(traces[320:]), batch_size=80)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(QuantileTCN(), train, val)
    print(f"SYMPTOM val_pinball={trainer.callback_metrics['val_pinball'].item():.3f} "
          f"val_coverage={trainer.callback_metrics['val_coverage'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

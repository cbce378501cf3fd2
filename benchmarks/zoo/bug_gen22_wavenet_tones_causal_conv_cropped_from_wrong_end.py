"""Bug: a small WaveNet-style next-sample predictor for synthetic audio. Each clip is 128 samples of two sine tones
with random frequencies, phases and amplitudes plus white noise (std 0.1), drawn from a seeded torch.Generator.
The model is a stack of gated dilated Conv1d layers (dilations 1, 2, 4, 8, kernel 2) with residual connections, and
predicts x[t+1] from x[..t] with MSE; validation uses the same loss on held-out clips.

Each causal convolution is written the common way, `Conv1d(padding=(k-1)*d)` followed by a crop, but the crop keeps
`h[..., pad:]` instead of `h[..., :-pad]`. Zero padding is added on both sides, so the kept outputs are the ones
whose receptive field runs from t to t + pad: the output at position t already sees x[t+1], the value it is asked to
predict. Train and validation loss both fall far below the noise floor (0.01) and everything looks excellent, but
the model is useless as a generator or a streaming predictor. Symptom after 6 epochs: val MSE 0.0021 (fixed crop:
0.063), while the honest streaming MSE, where the input is cut at t before predicting x[t+1], is 0.208 (fixed:
0.057, the same as its val MSE)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout22"
LENGTH = 128


def tone_clips(n, g):
    t = torch.arange(LENGTH).float()
    freqs = 0.02 + 0.2 * torch.rand(n, 2, 1, generator=g)
    phases = 2 * math.pi * torch.rand(n, 2, 1, generator=g)
    amps = 0.3 + 0.5 * torch.rand(n, 2, 1, generator=g)
    clean = (amps * torch.sin(2 * math.pi * freqs * t + phases)).sum(1)
    return (clean + 0.1 * torch.randn(n, LENGTH, generator=g)).unsqueeze(1)


class CausalGatedBlock(nn.Module):
    def __init__(self, channels, dilation):
        super().__init__()
        self.pad = dilation
        self.conv = nn.Conv1d(channels, 2 * channels, kernel_size=2, dilation=dilation, padding=self.pad)
        self.out = nn.Conv1d(channels, channels, 1)

    def forward(self, h):
        z = self.conv(h)[..., self.pad:]
        a, b = z.chunk(2, dim=1)
        return h + self.out(torch.tanh(a) * torch.sigmoid(b))


class TinyWaveNet(L.LightningModule):
    def __init__(self, channels=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inp = nn.Conv1d(1, channels, 1)
        self.blocks = nn.Sequential(*[CausalGatedBlock(channels, d) for d in (1, 2, 4, 8)])
        self.head = nn.Sequential(nn.ReLU(), nn.Conv1d(channels, 1, 1))

    def forward(self, x):
        return self.head(self.blocks(self.inp(x)))

    def _loss(self, clip):
        return F.mse_loss(self(clip[..., :-1]), clip[..., 1:])

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch[0]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@torch.no_grad()
def streaming_mse(model, clips, positions=(40, 60, 80, 100, 120)):
    errs = [(model(clips[..., : p + 1])[..., -1] - clips[..., p + 1]).pow(2).mean() for p in positions]
    return float(torch.stack(errs).mean())


def main():
    L.seed_everything(2201)
    g = torch.Generator().manual_seed(22)
    train, val = tone_clips(1536, g), tone_clips(256, g)
    model = TinyWaveNet()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=256))
    model.eval()
    print(f"SYMPTOM val_mse={float(trainer.callback_metrics['val_loss']):.4f} "
          f"streaming_mse={streaming_mse(model, val):.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

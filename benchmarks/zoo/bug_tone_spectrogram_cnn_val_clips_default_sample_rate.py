"""Bug: a small CNN classifies synthetic instrument-like tones (6 pitch classes, each a fundamental with a few
decaying harmonics, random detune, phase, loudness and background noise) from log-magnitude STFT spectrograms
(n_fft=256, hop 64), pooled over time and read out over frequency.

`make_clips` has a default `sr=8000` left from the first experiment; the training set is built with
`make_clips(..., sr=SR)` at 16 kHz but the validation call forgets the argument, so validation clips are rendered at
8 kHz. The STFT parameters are in samples, so every partial of a validation clip lands in twice the frequency bin it
would at 16 kHz: validation is a different distribution, nothing crashes, shapes still fit (time is pooled).
Symptom: val acc 0.46 / val loss 3.6 (train loss 0.04) vs val acc 1.00 / val loss 0.02 with sr=SR on both splits."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout16"
SR = 16000
PITCHES = [262.0, 330.0, 392.0, 523.0, 659.0, 784.0]
N_FFT, HOP = 256, 64


def make_clips(n, seed, sr=8000, dur=0.25):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(sr * dur)) / sr
    y = torch.randint(0, len(PITCHES), (n,), generator=g)
    f0 = torch.tensor(PITCHES)[y] * (1 + 0.02 * torch.randn(n, generator=g))
    wave = torch.zeros(n, t.numel())
    for h in range(1, 5):
        amp = (0.6 ** h) * (0.5 + torch.rand(n, 1, generator=g))
        phase = 2 * math.pi * torch.rand(n, 1, generator=g)
        wave += amp * torch.sin(2 * math.pi * h * f0[:, None] * t[None] + phase)
    wave *= torch.exp(-t * (2 + 6 * torch.rand(n, 1, generator=g)))
    wave *= 0.2 + torch.rand(n, 1, generator=g)
    wave += 0.05 * torch.randn(n, t.numel(), generator=g)
    return wave, y


def log_spec(wave):
    spec = torch.stft(wave, N_FFT, hop_length=HOP, window=torch.hann_window(N_FFT), return_complex=True).abs()
    return torch.log(spec + 1e-4).unsqueeze(1)  # (n, 1, freq, frames)


class ToneCNN(L.LightningModule):
    def __init__(self, n_classes=6, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d((2, 2)),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d((2, 2)),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(16 * ((N_FFT // 2 + 1) // 4), n_classes))

    def forward(self, x):
        return self.head(self.conv(x).mean(dim=3))  # pool over time, keep frequency

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(21)
    wtr, ytr = make_clips(600, seed=1, sr=SR)
    wva, yva = make_clips(300, seed=2)
    xtr, xva = log_spec(wtr), log_spec(wva)
    mu, sd = xtr.mean(), xtr.std()
    tr = TensorDataset((xtr - mu) / sd, ytr)
    va = TensorDataset((xva - mu) / sd, yva)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ToneCNN(), DataLoader(tr, batch_size=32, shuffle=True), DataLoader(va, batch_size=100))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}"
          f" train_loss={float(m['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

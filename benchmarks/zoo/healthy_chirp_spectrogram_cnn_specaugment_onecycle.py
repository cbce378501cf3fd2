"""Healthy: a small BatchNorm CNN classifies synthetic sound events from log-magnitude spectrograms: rising chirp,
falling chirp, amplitude-modulated tone, vibrato (FM) tone, band-limited noise burst and a two-note chord, each
with random base frequency, loudness, onset and background noise (8 kHz, 0.25 s). SpecAugment-style time and
frequency masking is applied only in `training_step`; spectrograms are standardized with training statistics;
SGD with Nesterov momentum under OneCycleLR; global average pooling head.
Final metric: val acc ~1.0."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"
SR, DUR, N_FFT, HOP = 8000, 0.25, 128, 32


def render(n, seed):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(SR * DUR)) / SR
    y = torch.randint(0, 6, (n,), generator=g)
    f0 = 300 + 1500 * torch.rand(n, 1, generator=g)
    u = lambda: torch.rand(n, 1, generator=g)
    phase = 2 * math.pi * u()
    up = torch.sin(2 * math.pi * (f0 * t + 0.5 * 6000 * t ** 2) + phase)
    down = torch.sin(2 * math.pi * ((f0 + 1500) * t - 0.5 * 6000 * t ** 2) + phase)
    am = (0.5 + 0.5 * torch.sin(2 * math.pi * (15 + 20 * u()) * t)) * torch.sin(2 * math.pi * f0 * t + phase)
    fm = torch.sin(2 * math.pi * f0 * t + 8 * torch.sin(2 * math.pi * (8 + 6 * u()) * t) + phase)
    noise = torch.randn(n, t.numel(), generator=g)
    band = torch.arange(t.numel() // 2 + 1) / (t.numel() // 2) < 0.1 + 0.3 * u()
    noise = torch.fft.irfft(torch.fft.rfft(noise) * band, n=t.numel())
    noise = noise / noise.std(1, keepdim=True)
    chord = 0.5 * (torch.sin(2 * math.pi * f0 * t + phase) + torch.sin(2 * math.pi * 1.5 * f0 * t))
    wave = torch.stack([up, down, am, fm, noise, chord], 1)[torch.arange(n), y]
    onset = (0.1 * SR * u()).long()
    env = (torch.arange(t.numel())[None] >= onset).float()
    wave = (0.2 + u()) * wave * env + 0.05 * torch.randn(n, t.numel(), generator=g)
    spec = torch.stft(wave, N_FFT, hop_length=HOP, window=torch.hann_window(N_FFT), return_complex=True).abs()
    return torch.log(spec + 1e-3).unsqueeze(1), y


def spec_augment(x):
    x = x.clone()
    n, _, fdim, tdim = x.shape
    for i in range(n):
        f = int(torch.randint(0, 8, (1,)))
        f0 = int(torch.randint(0, fdim - f, (1,)))
        w = int(torch.randint(0, 10, (1,)))
        t0 = int(torch.randint(0, tdim - w, (1,)))
        x[i, :, f0:f0 + f, :] = 0.0
        x[i, :, :, t0:t0 + w] = 0.0
    return x


class EventCNN(L.LightningModule):
    def __init__(self, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 32))
        self.head = nn.Linear(32, 6)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(spec_augment(x)), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(27)
    xtr, ytr = render(1000, seed=1)
    xva, yva = render(300, seed=2)
    mu, sd = xtr.mean(), xtr.std()
    tr, va = TensorDataset((xtr - mu) / sd, ytr), TensorDataset((xva - mu) / sd, yva)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(EventCNN(), DataLoader(tr, batch_size=32, shuffle=True), DataLoader(va, batch_size=150))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

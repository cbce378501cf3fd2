"""Bug: keyword spotting with a learnable front end. Waveforms of synthetic keywords (chirp up, chirp down, two-tone,
noise burst + tone, silence-ish) at random loudness go through a fixed STFT + triangular mel filterbank and then a
*learnable* per-band compression, log(exp(gain) * mel + exp(offset)), a simplified PCEN, before a small CNN. To
save memory the whole feature extraction is wrapped in `torch.no_grad()` inside `forward`, but that block
includes the learnable compression: `gain` and `offset` are trainable, sit in the optimizer, and never receive a
gradient, so they stay at their initial values. Training still works because the CNN adapts to the frozen
compression, and accuracy does not reveal the fault. Measured: after training the compression parameters have moved
by exactly 0.0 (val accuracy 0.65); computing only the STFT/mel under no_grad (compression outside it) lets them
train (mean |change| 0.46; val accuracy 0.52 at this short budget, with the front end still adapting)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout30"

SR, N_FFT, HOP, N_MELS, N_CLASSES = 4000, 128, 64, 32, 5


def mel_filterbank(n_fft, n_mels, sr):
    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    return torch.clamp(torch.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), min=0.0)


def make_keywords(n, gen):
    t = torch.arange(int(0.5 * SR)) / SR
    waves, labels = [], []
    for _ in range(n):
        k = torch.randint(0, N_CLASSES, (1,), generator=gen).item()
        f0 = 300 + 200 * torch.rand(1, generator=gen).item()
        if k == 0:
            wav = torch.sin(2 * math.pi * (f0 + 1200 * t) * t)
        elif k == 1:
            wav = torch.sin(2 * math.pi * (f0 + 1200 - 1200 * t) * t)
        elif k == 2:
            wav = torch.sin(2 * math.pi * f0 * t) + torch.sin(2 * math.pi * 2.5 * f0 * t)
        elif k == 3:
            wav = torch.sin(2 * math.pi * f0 * t) * (t > 0.25) + torch.randn(t.shape, generator=gen) * (t < 0.2)
        else:
            wav = 0.1 * torch.sin(2 * math.pi * f0 * t)
        loud = 10 ** (1.5 * torch.rand(1, generator=gen) - 1.0)
        waves.append(loud * wav + 0.5 * torch.randn(t.shape, generator=gen))
        labels.append(k)
    return torch.stack(waves), torch.tensor(labels)


class LearnableFrontendKWS(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("fb", mel_filterbank(N_FFT, N_MELS, SR))
        self.register_buffer("window", torch.hann_window(N_FFT))
        self.gain = nn.Parameter(torch.zeros(N_MELS, 1))
        self.offset = nn.Parameter(torch.full((N_MELS, 1), -2.0))
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(32, N_CLASSES))

    def features(self, wav):
        with torch.no_grad():
            spec = torch.stft(wav, N_FFT, HOP, window=self.window, return_complex=True).abs() ** 2
            mel = self.fb @ spec
            return torch.log(self.gain.exp() * mel + self.offset.exp())

    def forward(self, wav):
        return self.cnn(self.features(wav).unsqueeze(1))

    def training_step(self, batch, batch_idx):
        wav, y = batch
        loss = F.cross_entropy(self(wav), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        wav, y = batch
        logits = self(wav)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        frontend = [self.gain, self.offset]
        return torch.optim.Adam([{"params": frontend, "lr": 1e-2},
                                 {"params": self.cnn.parameters()}], lr=self.hparams.lr)


def main():
    L.seed_everything(34)
    gen = torch.Generator().manual_seed(34)
    wav, y = make_keywords(480, gen)
    train = DataLoader(TensorDataset(wav[:384], y[:384]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(wav[384:], y[384:]), batch_size=96)
    model = LearnableFrontendKWS()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=4,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train, val)
    moved = torch.cat([model.gain.detach().abs(), (model.offset.detach() + 2.0).abs()]).mean().item()
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} frontend_mean_abs_change={moved:.4f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

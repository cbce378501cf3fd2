"""Bug: instrument-timbre classifier (four synthetic instruments that differ in their harmonic envelope: 1/k,
1/k^2, odd harmonics only, a formant around the 5th harmonic; random pitch, decay and a 40 dB spread of recording
gain) - a small 2-D CNN over STFT spectrograms with a PANNs-style `bn0` BatchNorm on the input. The feature code
was ported from a torchaudio pipeline `Spectrogram(power=2) -> AmplitudeToDB()`, and the dB step was dropped
("`bn0` normalises the input anyway"). The network therefore sees raw power: values from 1e-14 to 1e7 with a
standard deviation of ~1e5; `bn0` rescales the batch, but the harmonics that tell the instruments apart sit
orders of magnitude below the loudest bins and below other clips' fundamentals.
Symptom: val acc 0.30 (chance 0.25) vs 0.96 with `torch.log(power + 1e-8)` (same model, same bn0)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout14"
FS = 8000
N_SAMPLES = 4096
N_FFT = 128


def play_notes(n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    f0 = 200 + 400 * torch.rand(n, 1, generator=g)
    k = torch.arange(1, 11).float()
    envelopes = torch.stack([1 / k, 1 / k ** 2, (k % 2 == 1).float() / k, torch.exp(-((k - 5) ** 2) / 4)])
    freqs = f0 * k
    amps = envelopes[labels] * (freqs < FS / 2)
    t = torch.arange(N_SAMPLES) / FS
    phase = 2 * math.pi * torch.rand(n, 10, 1, generator=g)
    tone = (amps[:, :, None] * torch.sin(2 * math.pi * freqs[:, :, None] * t + phase)).sum(1)
    decay = torch.exp(-t * (1 + 3 * torch.rand(n, 1, generator=g)))
    gain = 10 ** (4 * torch.rand(n, 1, generator=g) - 2)
    return gain * (decay * tone + 0.01 * torch.randn(n, N_SAMPLES, generator=g)), labels


def spectrogram(wav):
    """torchaudio.transforms.Spectrogram(n_fft=128, hop_length=128, power=2.0) equivalent."""
    spec = torch.stft(wav, N_FFT, hop_length=N_FFT, window=torch.hann_window(N_FFT), return_complex=True)
    return spec.abs().pow(2).unsqueeze(1)  # (batch, 1, freq, frames)


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True), nn.MaxPool2d(2))


class TimbreCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.bn0 = nn.BatchNorm2d(1)
        self.features = nn.Sequential(conv_block(1, 16), conv_block(16, 32), conv_block(32, 64))
        self.fc = nn.Linear(64, 4)

    def forward(self, spec):
        x = self.features(self.bn0(spec))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

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
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(12)
    train_wav, train_y = play_notes(1200, seed=1)
    val_wav, val_y = play_notes(400, seed=2)
    train_x, val_x = spectrogram(train_wav), spectrogram(val_wav)
    model = TimbreCNN()
    trainer = L.Trainer(
        max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="timbre_cnn"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(TensorDataset(train_x, train_y), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val_x, val_y), batch_size=200))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f} "
          f"input range {train_x.min():.1e}..{train_x.max():.1e} std {train_x.std():.1e}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

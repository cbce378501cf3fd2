"""Bug: keyword spotting on synthetic tone "words" (each keyword is a sequence of three tones whose pitch is shifted
per speaker, in noise) with a log-mel CNN. To make the model robust to microphone level, the clips were augmented
*offline*: every recording is stored three times, at gains 1.0, 0.5 and 0.25, and the resulting table is then split
80/20 at random. But the dataset peak-normalises every clip (`wav / wav.abs().max()`), so the three gain copies of a
recording become bit-identical inputs: about half of the validation clips have an exact duplicate in the training
set (the chance that none of the other two copies went to training is only 0.2**2). Training is normal and
validation accuracy looks excellent, but it measures memorisation of recordings, not generalisation to new ones.
Measured against the fix (split the recordings first, then augment only the training side): validation accuracy
0.89 (val loss 0.31) here vs 0.69 (val loss 1.09) on recording-disjoint validation with the same model and budget."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout30"

SR, N_FFT, HOP, N_MELS = 4000, 128, 64, 24
KEYWORDS = [(400, 700, 500), (700, 400, 900), (500, 900, 600), (900, 600, 400), (600, 500, 800), (800, 800, 450)]


def mel_filterbank(n_fft, n_mels, sr):
    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    return torch.clamp(torch.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), min=0.0)


def record_keywords(n_per_word, gen):
    t = torch.arange(int(0.45 * SR)) / SR
    waves, labels = [], []
    for word, tones in enumerate(KEYWORDS):
        for _ in range(n_per_word):
            shift = 2 ** (torch.randn(1, generator=gen).item() * 0.12)
            onset = torch.randint(0, 300, (1,), generator=gen).item()
            wav = torch.zeros_like(t)
            for k, f in enumerate(tones):
                seg = slice(onset + k * 400, onset + k * 400 + 380)
                wav[seg] += torch.sin(2 * math.pi * f * shift * t[seg])
            wav += 2.5 * torch.randn(t.shape, generator=gen)
            waves.append(wav)
            labels.append(word)
    return torch.stack(waves), torch.tensor(labels)


class KeywordClips(Dataset):
    def __init__(self, waves, labels):
        self.waves, self.labels = waves, labels
        self.fb = mel_filterbank(N_FFT, N_MELS, SR)
        self.window = torch.hann_window(N_FFT)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        wav = self.waves[i] / self.waves[i].abs().max()
        spec = torch.stft(wav, N_FFT, HOP, window=self.window, return_complex=True).abs() ** 2
        logmel = torch.log(self.fb @ spec + 1e-6)
        return (logmel + 4.0) / 3.0, self.labels[i]


class KeywordDataModule(L.LightningDataModule):
    def setup(self, stage=None):
        gen = torch.Generator().manual_seed(30)
        waves, labels = record_keywords(40, gen)
        gains = (1.0, 0.5, 0.25)
        all_waves = torch.cat([waves * g for g in gains])
        all_labels = labels.repeat(len(gains))
        perm = torch.randperm(len(all_labels), generator=gen)
        n_val = len(perm) // 5
        self.val_ds = KeywordClips(all_waves[perm[:n_val]], all_labels[perm[:n_val]])
        self.train_ds = KeywordClips(all_waves[perm[n_val:]], all_labels[perm[n_val:]])

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=32, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=64)


class KeywordCNN(L.LightningModule):
    def __init__(self, n_classes=len(KEYWORDS), lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d((4, 4)),
            nn.Flatten(), nn.Linear(512, 64), nn.ReLU(), nn.Linear(64, n_classes))

    def forward(self, x):
        return self.net(x.unsqueeze(1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(30)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(KeywordCNN(), datamodule=KeywordDataModule())
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: machine-regime recognition from a single synthetic vibration trace. The trace switches between three
regimes (idle / cruise / high load) in segments of random length; each regime has its own dominant frequency and
amplitude plus noise. Windows of 64 samples (stride 16) are labelled with the regime at their centre.
`prepare_data` computes the log-magnitude rFFT of every window once and caches features, labels and window start
positions to an .npz file (skipped when the cache exists); `setup` loads the cache. The split is time-based: training
windows must end before the cut, validation windows start at least one window length after it, so no window
straddles the boundary and no samples are shared between the splits (overlap within the training side is fine).
StandardScaler fitted on the training windows. Own metric: val acc 0.988."""

import os
import tempfile

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout29"

WINDOW, STRIDE = 64, 16
FREQS = (0.04, 0.09, 0.17)
AMPS = (0.5, 1.0, 1.5)


def simulate_trace(n=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    regimes = []
    while len(regimes) < n:
        regime = int(torch.randint(0, 3, (1,), generator=g))
        regimes += [regime] * int(torch.randint(200, 700, (1,), generator=g))
    regimes = np.array(regimes[:n])
    t = np.arange(n)
    freq = np.array(FREQS)[regimes]
    phase = 2 * np.pi * np.cumsum(freq)
    noise = torch.randn(n, generator=g).numpy()
    signal = np.array(AMPS)[regimes] * np.sin(phase) + 0.6 * noise + 0.1 * np.sin(2 * np.pi * t / 5000)
    return signal.astype(np.float32), regimes


class VibrationDataModule(L.LightningDataModule):
    def __init__(self, batch_size=64, cut=0.75):
        super().__init__()
        self.batch_size = batch_size
        self.cut = cut
        self.cache = os.path.join(tempfile.gettempdir(), f"pipe29_vibration_fft_w{WINDOW}_s{STRIDE}.npz")

    def prepare_data(self):
        if os.path.exists(self.cache):
            return
        signal, regimes = simulate_trace()
        starts = np.arange(0, len(signal) - WINDOW + 1, STRIDE)
        windows = np.stack([signal[s:s + WINDOW] for s in starts])
        feats = np.log1p(np.abs(np.fft.rfft(windows * np.hanning(WINDOW), axis=1)))
        labels = regimes[starts + WINDOW // 2]
        np.savez(self.cache, feats=feats.astype(np.float32), labels=labels, starts=starts)

    def setup(self, stage=None):
        data = np.load(self.cache)
        feats, labels, starts = data["feats"], data["labels"], data["starts"]
        cut = int(self.cut * (starts[-1] + WINDOW))
        tr = starts + WINDOW <= cut
        va = starts >= cut + WINDOW
        scaler = StandardScaler().fit(feats[tr])
        self.train_ds = TensorDataset(torch.tensor(scaler.transform(feats[tr]), dtype=torch.float32),
                                      torch.tensor(labels[tr]))
        self.val_ds = TensorDataset(torch.tensor(scaler.transform(feats[va]), dtype=torch.float32),
                                    torch.tensor(labels[va]))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=256)


class SpectrumMLP(L.LightningModule):
    def __init__(self, n_bins=WINDOW // 2 + 1, hidden=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_bins, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(31)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SpectrumMLP(), datamodule=VibrationDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: classification of short synthetic acoustic events (5 classes: up-chirp, down-chirp, two-tone call,
amplitude-modulated tone, band-limited noise burst) recorded at 4 kHz with random onset, duration, pitch,
loudness and background noise (seeded). Features: `torch.stft` power spectrum projected on a 32-band triangular
mel filterbank, then log, then standardized per mel band with statistics of the training split. A small
BatchNorm CNN; SpecAugment-style time and frequency masking is applied to training batches only (inside
`training_step`, after the data are standardized, so the masks are zeros = band means); cross-entropy with
label smoothing 0.1; AdamW with OneCycleLR stepped per batch.

Why it is correct: the loudness varies by 20 dB but the log compresses it and the per-band standardization uses
only training clips; the masking never touches validation; BatchNorm sees batches of 64 in training and is in
eval mode for validation; labels are balanced and encoded from one fixed class list shared by both splits.
Measured: val accuracy 0.996, val loss 0.472 (label smoothing keeps it above zero).
"""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout25"
SR, N = 4000, 2048
CLASSES = ("up_chirp", "down_chirp", "two_tone", "am_tone", "noise_burst")


def synth_events(n, g):
    t = torch.arange(N) / SR
    y = torch.arange(n) % len(CLASSES)
    f0 = 300 + 700 * torch.rand(n, 1, generator=g)
    onset = 0.05 + 0.15 * torch.rand(n, 1, generator=g)
    dur = 0.15 + 0.2 * torch.rand(n, 1, generator=g)
    env = ((t >= onset) & (t < onset + dur)).float()
    tau = (t - onset).clamp_min(0)
    up = torch.sin(2 * math.pi * (f0 * tau + 1500 * tau ** 2))
    down = torch.sin(2 * math.pi * ((f0 + 600) * tau - 1500 * tau ** 2))
    two = torch.sin(2 * math.pi * f0 * tau) * (torch.sin(2 * math.pi * 12 * tau) > 0) + \
        torch.sin(2 * math.pi * 1.5 * f0 * tau) * (torch.sin(2 * math.pi * 12 * tau) <= 0)
    am = torch.sin(2 * math.pi * f0 * tau) * (1 + torch.sin(2 * math.pi * 30 * tau)) / 2
    noise = torch.randn(n, N, generator=g)
    burst = noise - noise.roll(1, 1)
    sig = torch.stack([up, down, two, am, burst / 2], 1)[torch.arange(n), y]
    gain = 10 ** (-torch.rand(n, 1, generator=g))
    return gain * env * sig + 0.05 * torch.randn(n, N, generator=g), y


def mel_filterbank(n_fft=256, bands=32):
    freqs = torch.linspace(0, SR / 2, n_fft // 2 + 1)
    mel = 2595 * torch.log10(1 + freqs / 700)
    edges = torch.linspace(0, float(mel.max()), bands + 2)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return torch.clamp(torch.minimum((mel - lo) / (mid - lo), (hi - mel) / (hi - mid)), min=0)


def log_mel(x, fb):
    spec = torch.stft(x, 256, hop_length=64, window=torch.hann_window(256), return_complex=True).abs() ** 2
    return torch.log(fb @ spec + 1e-8)


class EventCNN(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()

        def block(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.net = nn.Sequential(block(1, 16), block(16, 32), block(32, 48), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Dropout(0.2), nn.Linear(48, len(CLASSES)))

    def forward(self, x):
        return self.net(x.unsqueeze(1))

    def spec_augment(self, x):
        x = x.clone()
        for i in range(x.shape[0]):
            f = int(torch.randint(0, 24, (1,)))
            t = int(torch.randint(0, x.shape[2] - 6, (1,)))
            x[i, f:f + 4] = 0
            x[i, :, t:t + 6] = 0
        return x

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(self.spec_augment(x)), y, label_smoothing=0.1)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y, label_smoothing=0.1))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(440)
    g = torch.Generator().manual_seed(2)
    fb = mel_filterbank()
    x_tr, y_tr = synth_events(1000, g)
    x_va, y_va = synth_events(250, g)
    f_tr, f_va = log_mel(x_tr, fb), log_mel(x_va, fb)
    mu, sd = f_tr.mean((0, 2), keepdim=True), f_tr.std((0, 2), keepdim=True)
    model = EventCNN()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset((f_tr - mu) / sd, y_tr), batch_size=64, shuffle=True),
                DataLoader(TensorDataset((f_va - mu) / sd, y_va), batch_size=250))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

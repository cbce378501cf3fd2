"""Bug: instrument identification from synthetic notes (5 "instruments" that differ in their harmonic amplitudes,
attack time and vibrato; random pitch and loudness per note, in noise). Log-mel features (24 bands, hand-built
triangular filterbank on `torch.stft`) go through per-utterance cepstral mean and variance normalisation (CMVN)
inside `forward`, then a small CNN. The CMVN reduces over `dim=0` instead of the time axis (`dim=-1`): for a batch
shaped (batch, mels, frames), that subtracts the *batch* mean of every time-frequency cell and divides by the batch
std, so each clip's normalised features, and hence its prediction, depend on which other clips share its batch.
Training still converges (the batch statistics are a noisy but usable normaliser), but predictions change with
batch composition and size. Measured: val accuracy 0.70 in batches of 100 but 0.58 when the same trained model
scores the same clips in batches of 4 (a clip's answer depends on its neighbours); with CMVN over time: 0.69 and
0.69, and lower val loss (0.76 vs 0.87)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout30"

SR, N_FFT, HOP, N_MELS = 8000, 256, 128, 24
TIMBRES = ((1.0, 0.5, 0.3, 0.2, 0.1), (1.0, 0.0, 0.6, 0.0, 0.4), (0.3, 1.0, 0.2, 0.6, 0.1),
           (1.0, 0.9, 0.8, 0.7, 0.6), (1.0, 0.1, 0.05, 0.0, 0.0))
ATTACK = (0.01, 0.05, 0.15, 0.02, 0.08)


def mel_filterbank(n_fft, n_mels, sr):
    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    return torch.clamp(torch.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), min=0.0)


def make_notes(n, gen):
    t = torch.arange(int(0.5 * SR)) / SR
    fb, window = mel_filterbank(N_FFT, N_MELS, SR), torch.hann_window(N_FFT)
    feats, labels = [], []
    for _ in range(n):
        inst = torch.randint(0, len(TIMBRES), (1,), generator=gen).item()
        f0 = 150 * 2 ** (2 * torch.rand(1, generator=gen).item())
        vib = 1 + 0.01 * inst * torch.sin(2 * math.pi * 5 * t)
        env = torch.clamp(t / ATTACK[inst], max=1.0) * torch.exp(-2 * t)
        wav = sum(a * torch.sin(2 * math.pi * (k + 1) * f0 * vib * t) for k, a in enumerate(TIMBRES[inst]))
        wav = 10 ** (torch.rand(1, generator=gen) - 0.5) * env * wav + 0.3 * torch.randn(t.shape, generator=gen)
        spec = torch.stft(wav, N_FFT, HOP, window=window, return_complex=True).abs() ** 2
        feats.append(torch.log(fb @ spec + 1e-5))
        labels.append(inst)
    return torch.stack(feats), torch.tensor(labels)


class InstrumentCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d((3, 1)),
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(96, len(TIMBRES)))

    def forward(self, logmel):
        mean = logmel.mean(dim=0, keepdim=True)
        std = logmel.std(dim=0, keepdim=True)
        return self.net(((logmel - mean) / (std + 1e-5)).unsqueeze(1))

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
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return [opt], [sched]


def main():
    L.seed_everything(33)
    gen = torch.Generator().manual_seed(33)
    x, y = make_notes(500, gen)
    train = DataLoader(TensorDataset(x[:400], y[:400]), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(x[400:], y[400:]), batch_size=100)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    model = InstrumentCNN()
    trainer.fit(model, train, val)
    model.eval()
    with torch.no_grad():
        small_batches = torch.cat([model(chunk).argmax(-1) for chunk in x[400:].split(4)])
    acc_bs4 = (small_batches == y[400:]).float().mean().item()
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} val_acc_batch4={acc_bs4:.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

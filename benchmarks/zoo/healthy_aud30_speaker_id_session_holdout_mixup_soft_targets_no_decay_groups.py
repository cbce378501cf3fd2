"""Healthy: closed-set speaker identification. Each of 8 synthetic speakers has a fixed "vocal tract" (three formant
resonances that shape the harmonics of a voiced source); every utterance has a random pitch contour and random
voiced/unvoiced segments, and every recording *session* adds its own channel tilt and noise level. Speakers are
the classes, so both sides must contain every speaker, but sessions are held out: all utterances of session 3 of
each speaker are validation, sessions 0-2 are training, so no recording straddles the split and validation
measures generalisation to a new channel. Log-mel features get per-utterance CMVN over the time axis. Training
uses mixup on the features with soft targets passed as probabilities to `F.cross_entropy` (valid since PyTorch
1.10); validation uses the clean features and hard labels. AdamW with two parameter groups (no weight decay on
biases and norm weights) and a cosine schedule; a 1-D conv encoder with mean+std statistics pooling.
Own metric: val accuracy 0.98 on the held-out sessions (val loss 0.27)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout30"

SR, N_FFT, HOP, N_MELS, N_SPEAKERS, N_SESSIONS = 8000, 256, 128, 32, 8, 4


def mel_filterbank(n_fft, n_mels, sr):
    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    return torch.clamp(torch.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), min=0.0)


def make_corpus(utts_per_session, gen):
    fb, window = mel_filterbank(N_FFT, N_MELS, SR), torch.hann_window(N_FFT)
    t = torch.arange(int(0.6 * SR)) / SR
    formants = 300 + 2700 * torch.rand(N_SPEAKERS, 3, generator=gen)
    feats, speakers, sessions = [], [], []
    for spk in range(N_SPEAKERS):
        for ses in range(N_SESSIONS):
            tilt = 0.3 * torch.randn(1, generator=gen).item()
            noise = 0.05 + 0.2 * torch.rand(1, generator=gen).item()
            for _ in range(utts_per_session):
                f0 = (100 + 120 * torch.rand(1, generator=gen)) * (1 + 0.1 * torch.sin(2 * math.pi * t))
                phase = torch.cumsum(2 * math.pi * f0 / SR, 0)
                wav = torch.zeros_like(t)
                for k in range(1, 25):
                    fk = k * f0.mean().item()
                    if fk >= SR / 2:
                        break
                    gain = sum(math.exp(-((fk - f) / 150.0) ** 2) for f in formants[spk].tolist()) + 0.05
                    wav += gain * (fk / 1000.0) ** tilt * torch.sin(k * phase)
                voiced = (torch.sin(2 * math.pi * (3 + torch.rand(1, generator=gen)) * t) > -0.3).float()
                wav = wav * voiced + noise * torch.randn(t.shape, generator=gen)
                spec = torch.stft(wav, N_FFT, HOP, window=window, return_complex=True).abs() ** 2
                logmel = torch.log(fb @ spec + 1e-6)
                feats.append((logmel - logmel.mean(-1, keepdim=True)) / (logmel.std(-1, keepdim=True) + 1e-5))
                speakers.append(spk)
                sessions.append(ses)
    return torch.stack(feats), torch.tensor(speakers), torch.tensor(sessions)


class SpeakerNet(L.LightningModule):
    def __init__(self, lr=3e-3, mixup_alpha=0.4):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv1d(N_MELS, 64, 5, padding=2), nn.BatchNorm1d(64), nn.ReLU(),
            nn.Conv1d(64, 64, 3, padding=2, dilation=2), nn.BatchNorm1d(64), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, N_SPEAKERS))
        self.beta = torch.distributions.Beta(mixup_alpha, mixup_alpha)

    def forward(self, x):
        h = self.encoder(x)
        return self.head(torch.cat([h.mean(-1), h.std(-1)], -1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        lam = self.beta.sample().item()
        perm = torch.randperm(x.shape[0], device=x.device)
        soft = F.one_hot(y, N_SPEAKERS).float()
        x_mix = lam * x + (1 - lam) * x[perm]
        y_mix = lam * soft + (1 - lam) * soft[perm]
        loss = F.cross_entropy(self(x_mix), y_mix)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        decay = [p for p in self.parameters() if p.ndim > 1]
        no_decay = [p for p in self.parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-2},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return [opt], [sched]


def main():
    L.seed_everything(39)
    gen = torch.Generator().manual_seed(39)
    x, spk, ses = make_corpus(8, gen)
    is_val = ses == N_SESSIONS - 1
    train = DataLoader(TensorDataset(x[~is_val], spk[~is_val]), batch_size=16, shuffle=True, drop_last=True)
    val = DataLoader(TensorDataset(x[is_val], spk[is_val]), batch_size=64)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=4,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SpeakerNet(), train, val)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

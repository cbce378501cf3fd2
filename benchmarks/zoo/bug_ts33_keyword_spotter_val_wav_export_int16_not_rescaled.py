"""Bug: a keyword spotter (6 keywords, each a sequence of three tones; 0.4 s clips at 4 kHz with random onset,
loudness and background noise) classifies log-power spectrogram frames (STFT, 32 bands) with a conv + GRU network;
features are standardised per band with a global CMVN fitted on the training clips. The training clips are generated
and kept as float waveforms in [-1, 1]; the validation clips come from the team's WAV export, which stores 16-bit PCM,
and the loader turns them into float with `clip.float()` without dividing by 32768. Every validation log-power band is
therefore shifted by ln(32768^2) = 20.8, several CMVN standard deviations, and the network sees inputs far off its
training range.

Why training still "works": nothing crashes, the training loss falls to near zero, and the validation clips are
genuinely held-out and correctly labelled; they are just decoded differently from the training clips. Measured
against the fixed version (`clip.float() / 32768`): val loss 3.56 with the bug (the class-prior baseline is
ln 6 = 1.79) vs 0.003 fixed, val accuracy 0.16 vs 1.00, train loss 0.005 in both."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout33"
SR, N_SAMPLES, N_FFT, HOP = 4000, 1600, 256, 64
TONES = torch.tensor([[300., 600., 900.], [900., 600., 300.], [450., 450., 1200.],
                      [1200., 300., 1200.], [600., 1500., 600.], [300., 1500., 900.]])


def simulate_clips(n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(len(TONES), (n,), generator=g)
    t = torch.arange(N_SAMPLES) / SR
    waves = 0.02 * torch.randn(n, N_SAMPLES, generator=g)
    for i in range(n):
        onset = int(torch.randint(0, 400, (1,), generator=g))
        amp = 0.1 + 0.5 * float(torch.rand(1, generator=g))
        for j, f in enumerate(TONES[labels[i]]):
            s = onset + j * 360
            waves[i, s:s + 360] += amp * torch.sin(2 * torch.pi * f * t[:360])
    return waves.clamp(-1, 1), labels


def load_wav_export(waves):
    """Stand-in for reading the validation WAV files: 16-bit PCM samples."""
    return (waves * 32767).round().to(torch.int16)


def log_bands(waves):
    spec = torch.stft(waves, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True).abs() ** 2
    bands = spec[:, :128].reshape(waves.shape[0], 32, 4, -1).mean(2)
    return torch.log(bands + 1e-6).transpose(1, 2)  # (clips, frames, bands)


class KeywordSpotter(L.LightningModule):
    def __init__(self, n_classes=6, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.conv = nn.Sequential(nn.Conv1d(32, 48, 3, padding=1), nn.ReLU(),
                                  nn.Conv1d(48, 48, 3, padding=1), nn.ReLU())
        self.gru = nn.GRU(48, 48, batch_first=True)
        self.head = nn.Linear(48, n_classes)

    def forward(self, x):
        h = self.conv(x.transpose(1, 2)).transpose(1, 2)
        _, last = self.gru(h)
        return self.head(last[-1])

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch[0]), batch[1])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch[0])
        self.log_dict({"val_loss": F.cross_entropy(logits, batch[1]),
                       "val_acc": (logits.argmax(-1) == batch[1]).float().mean()})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3307)
    train_waves, train_y = simulate_clips(900, seed=5)
    val_pcm, val_y = simulate_clips(300, seed=6)
    val_pcm = load_wav_export(val_pcm)
    train_x = log_bands(train_waves)
    val_x = log_bands(val_pcm.float())
    mean, std = train_x.mean((0, 1)), train_x.std((0, 1))
    train = TensorDataset((train_x - mean) / std, train_y)
    val = TensorDataset((val_x - mean) / std, val_y)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(KeywordSpotter(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=100))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f} "
          f"train_loss={float(m['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

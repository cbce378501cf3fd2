"""Bug: frame-level note transcription. Synthetic "melodies" hold one of 5 notes (or silence) for 4-12 frames at a
time, in noise; the model is a GRU over log-mel frames that, like an autoregressive transcriber, also receives the
previous frame's label (teacher forcing in training, its own greedy prediction when decoding). The previous-label
sequence is built as `F.pad(labels, (1, 0), value=BOS)[:, 1:]`, but the slice should be `[:, :-1]`: padding on the
left and then dropping the *first* element hands back `labels` itself, so at every frame the model is told the very
label it has to predict. Training and teacher-forced validation losses go to ~0 and look superb, yet the model never
learns to read the spectrogram. Measured: teacher-forced val accuracy 1.000 (val loss 0.005) with the bug, but
free-running (greedy) decoding accuracy only 0.16; the fixed slice gives teacher-forced 0.92 (val loss 0.25) and
free-running 0.72."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout30"

SR, N_FFT, HOP, N_MELS = 4000, 128, 64, 24
NOTES = (0, 330, 440, 550, 660, 880)  # class 0 is silence
BOS = len(NOTES)


def mel_filterbank(n_fft, n_mels, sr):
    def hz_to_mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    mels = torch.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2)
    hz = 700.0 * (10 ** (mels / 2595.0) - 1.0)
    bins = torch.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    return torch.clamp(torch.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)), min=0.0)


def make_melodies(n, n_frames, gen):
    fb, window = mel_filterbank(N_FFT, N_MELS, SR), torch.hann_window(N_FFT)
    feats, labels = [], []
    for _ in range(n):
        frame_labels = []
        while len(frame_labels) < n_frames:
            note = torch.randint(0, len(NOTES), (1,), generator=gen).item()
            frame_labels += [note] * torch.randint(4, 13, (1,), generator=gen).item()
        frame_labels = torch.tensor(frame_labels[:n_frames])
        freq = torch.tensor(NOTES, dtype=torch.float32)[frame_labels].repeat_interleave(HOP)
        phase = torch.cumsum(2 * math.pi * freq / SR, 0)
        wav = torch.where(freq > 0, torch.sin(phase), torch.zeros_like(phase))
        wav = wav + 0.8 * torch.randn(wav.shape, generator=gen)
        spec = torch.stft(wav, N_FFT, HOP, window=window, center=True, return_complex=True).abs() ** 2
        logmel = torch.log(fb @ spec + 1e-6)[:, :n_frames].T
        feats.append((logmel + 3.0) / 3.0)
        labels.append(frame_labels)
    return torch.stack(feats), torch.stack(labels)


class ARTranscriber(L.LightningModule):
    def __init__(self, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.label_emb = nn.Embedding(len(NOTES) + 1, 16)
        self.inp = nn.Linear(N_MELS, 48)
        self.gru = nn.GRU(48 + 16, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(NOTES))

    def prev_labels(self, labels):
        return F.pad(labels, (1, 0), value=BOS)[:, 1:]

    def forward(self, feats, prev):
        x = torch.cat([torch.relu(self.inp(feats)), self.label_emb(prev)], -1)
        return self.head(self.gru(x)[0])

    @torch.no_grad()
    def greedy_decode(self, feats):
        h = feats.new_zeros(1, feats.shape[0], self.hparams.hidden)
        prev = torch.full((feats.shape[0],), BOS, dtype=torch.long, device=feats.device)
        out = []
        for t in range(feats.shape[1]):
            x = torch.cat([torch.relu(self.inp(feats[:, t])), self.label_emb(prev)], -1)
            step, h = self.gru(x[:, None], h)
            prev = self.head(step[:, 0]).argmax(-1)
            out.append(prev)
        return torch.stack(out, 1)

    def training_step(self, batch, batch_idx):
        feats, labels = batch
        logits = self(feats, self.prev_labels(labels))
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        feats, labels = batch
        logits = self(feats, self.prev_labels(labels))
        self.log("val_loss", F.cross_entropy(logits.flatten(0, 1), labels.flatten()))
        self.log("val_acc_tf", (logits.argmax(-1) == labels).float().mean())
        self.log("val_acc_free", (self.greedy_decode(feats) == labels).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(31)
    gen = torch.Generator().manual_seed(31)
    feats, labels = make_melodies(320, 48, gen)
    train = DataLoader(TensorDataset(feats[:256], labels[:256]), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(feats[256:], labels[256:]), batch_size=64)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=4,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ARTranscriber(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc_tf={m['val_acc_tf'].item():.3f} val_acc_free={m['val_acc_free'].item():.3f} "
          f"val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

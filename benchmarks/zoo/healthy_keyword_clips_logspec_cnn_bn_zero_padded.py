"""Healthy: a keyword-spotting style 1-D CNN on int16 PCM clips, written the way torchaudio-based code is: the
clips (variable length, zero-padded to 2000 samples in the collate, as `pad_sequence` does) are scaled to [-1, 1]
by 1/32768, a `LogSpectrogram` front end (Hann window, frames of 128 with hop 64, power spectrum, then
`10 * log10(clamp(power, min=1e-10))` as `AmplitudeToDB` does, so silent padded frames stay finite), a per-clip
standardisation, then Conv1d-BatchNorm-ReLU blocks over time and global average pooling. AdamW, OneCycleLR per
step, label smoothing 0.05. Data: 4 synthetic "keywords" (rising chirp, falling chirp, amplitude-modulated tone,
two bursts) with random pitch, loudness and noise. Measured: val accuracy 0.94 after 10 epochs (chance 0.25)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout8"

SR, MAX_LEN = 8000, 2000


def make_clips(n, seed):
    g = torch.Generator().manual_seed(seed)
    clips, labels = [], torch.randint(0, 4, (n,), generator=g)
    for y in labels.tolist():
        length = int(torch.randint(1200, MAX_LEN + 1, (1,), generator=g))
        t = torch.arange(length) / SR
        f0 = 300 + 1500 * float(torch.rand(1, generator=g))
        if y == 0:
            phase = 2 * math.pi * (f0 * t + 900 * t ** 2)
            x = torch.sin(phase)
        elif y == 1:
            phase = 2 * math.pi * ((f0 + 700) * t - 900 * t ** 2)
            x = torch.sin(phase)
        elif y == 2:
            x = torch.sin(2 * math.pi * f0 * t) * (0.6 + 0.4 * torch.sin(2 * math.pi * 12 * t))
        else:
            env = ((t > 0.02) & (t < 0.05)) | ((t > 0.09) & (t < 0.12))
            x = torch.sin(2 * math.pi * f0 * t) * env
        x = x + 0.05 * torch.randn(length, generator=g)
        amp = 0.05 + 0.85 * float(torch.rand(1, generator=g))
        clips.append((x / x.abs().max() * amp * 32767).round().to(torch.int16))
    return clips, labels


class ClipDataset(Dataset):
    def __init__(self, n, seed):
        self.clips, self.labels = make_clips(n, seed)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.clips[i], self.labels[i]


def collate(rows):
    wav = torch.zeros(len(rows), MAX_LEN, dtype=torch.int16)
    for i, (clip, _) in enumerate(rows):
        wav[i, : len(clip)] = clip
    return wav, torch.stack([r[1] for r in rows])


class LogSpectrogram(nn.Module):
    def __init__(self, n_fft=128, hop_length=64, amin=1e-10):
        super().__init__()
        self.n_fft, self.hop_length, self.amin = n_fft, hop_length, amin
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav):
        frames = wav.unfold(-1, self.n_fft, self.hop_length) * self.window
        power = torch.fft.rfft(frames).abs().pow(2)  # [batch, frames, bins]
        return (10.0 * torch.log10(torch.clamp(power, min=self.amin))).transpose(1, 2)


class KeywordCNN(nn.Module):
    def __init__(self, n_bins=65, n_classes=4, width=64):
        super().__init__()
        self.frontend = LogSpectrogram()
        blocks, c = [], n_bins
        for _ in range(3):
            blocks += [nn.Conv1d(c, width, 3, padding=1, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            c = width
        self.features = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(width, n_classes)

    def forward(self, wav):
        spec = self.frontend(wav.float() / 32768.0)
        spec = (spec - spec.mean(dim=(1, 2), keepdim=True)) / (spec.std(dim=(1, 2), keepdim=True) + 1e-5)
        return self.classifier(self.dropout(self.features(spec).mean(-1)))


class LitKeywords(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = KeywordCNN()

    def forward(self, wav):
        return self.model(wav)

    def training_step(self, batch, batch_idx):
        wav, y = batch
        loss = F.cross_entropy(self(wav), y, label_smoothing=0.05)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        wav, y = batch
        logits = self(wav)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(1) == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(8104)
    train = DataLoader(ClipDataset(1200, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(ClipDataset(300, 1), batch_size=100, collate_fn=collate)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitKeywords(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

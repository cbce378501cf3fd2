"""Bug: semi-supervised keyword spotting with pseudo-labels (FixMatch-lite). Each training batch holds labelled
clips and unlabelled ones (label -1); `training_step` switches the network to eval mode to predict pseudo-labels
for the unlabelled clips under `torch.no_grad()` and never switches it back (`self.model.train()` is missing).
From the first step on, the network trains in eval mode: the input BatchNorm over the dB frequency bins (PANNs'
`bn0`) and the conv BatchNorms normalise with their initial running statistics (mean 0, variance 1) which eval
mode never updates, so the -100..+60 dB inputs pass unnormalised, and dropout is off. Data: 4 synthetic int16
"keywords", 400 labelled + 800 unlabelled training clips. AdamW, OneCycleLR per step.
Measured: val accuracy 0.56 vs 0.72 with `self.model.train()` after the pseudo-labels."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"train-mode"}
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
        power = torch.fft.rfft(frames).abs().pow(2)
        return (10.0 * torch.log10(torch.clamp(power, min=self.amin))).transpose(1, 2)


class KeywordCNN(nn.Module):
    def __init__(self, n_bins=65, n_classes=4, width=64):
        super().__init__()
        self.frontend = LogSpectrogram()
        self.bn0 = nn.BatchNorm1d(n_bins)
        layers, c = [], n_bins
        for _ in range(3):
            layers += [nn.Conv1d(c, width, 3, padding=1, bias=False), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            c = width
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.3)
        self.fc = nn.Linear(width, n_classes)

    def forward(self, wav):
        x = self.bn0(self.frontend(wav.float() / 32768.0))
        return self.fc(self.dropout(self.features(x).mean(-1)))


class SemiSupervisedClips(ClipDataset):
    def __init__(self, n, seed, n_labelled):
        super().__init__(n, seed)
        self.labels = self.labels.clone()
        self.labels[n_labelled:] = -1


class LitKeywords(L.LightningModule):
    def __init__(self, lr=3e-3, threshold=0.9, unlabelled_weight=0.5):
        super().__init__()
        self.save_hyperparameters()
        self.model = KeywordCNN()

    def forward(self, wav):
        return self.model(wav)

    def training_step(self, batch, batch_idx):
        wav, y = batch
        unlabelled = y < 0
        if unlabelled.any():
            self.model.eval()
            with torch.no_grad():
                probs = self.model(wav[unlabelled]).softmax(-1)
            conf, pseudo = probs.max(-1)
        logits = self(wav)
        loss = F.cross_entropy(logits[~unlabelled], y[~unlabelled])
        if unlabelled.any() and (conf > self.hparams.threshold).any():
            keep = conf > self.hparams.threshold
            loss = loss + self.hparams.unlabelled_weight * F.cross_entropy(logits[unlabelled][keep], pseudo[keep])
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
    L.seed_everything(8109)
    train = DataLoader(SemiSupervisedClips(1200, 0, 400), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(ClipDataset(300, 1), batch_size=100, collate_fn=collate)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitKeywords(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

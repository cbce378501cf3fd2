"""Bug: a raw-waveform keyword classifier (a SampleCNN/M5-like stack of strided Conv1d + ReLU + max-pool, no
normalisation layer, global average pooling, linear head) fed the int16 PCM samples as they come out of the WAV
reader, `wav.float()`, without the division by 32768: inputs with an RMS in the thousands instead of about 0.3.
The ReLU stack is positively homogeneous, so the logits at initialisation are thousands of times too large and the
SGD steps on the first conv are huge. Data: 4 synthetic int16 "keywords" (rising/falling chirp, AM tone, two
bursts), random pitch, loudness (5%..90% of full scale) and noise. SGD with momentum 0.9 and weight decay,
StepLR per epoch.
Measured: val accuracy 0.28 with val loss 1.385 = ln 4 (the network collapsed to a uniform output) vs 0.72
with `wav.float() / 32768` (val loss 0.42)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"input-scale", "initial-loss"}
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


class WaveformCNN(nn.Module):
    def __init__(self, n_classes=4, width=32):
        super().__init__()
        self.conv1 = nn.Conv1d(1, width, kernel_size=40, stride=4)
        self.pool1 = nn.MaxPool1d(4)
        self.conv2 = nn.Conv1d(width, width, kernel_size=3, padding=1)
        self.pool2 = nn.MaxPool1d(2)
        self.conv3 = nn.Conv1d(width, 2 * width, kernel_size=3, padding=1)
        self.pool3 = nn.MaxPool1d(2)
        self.conv4 = nn.Conv1d(2 * width, 2 * width, kernel_size=3, padding=1)
        self.fc = nn.Linear(2 * width, n_classes)

    def forward(self, x):  # x: [batch, 1, samples]
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = self.pool3(F.relu(self.conv3(x)))
        x = F.relu(self.conv4(x))
        return self.fc(x.mean(-1))


class LitKeywords(L.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.model = WaveformCNN()

    def forward(self, wav):
        return self.model(wav.float().unsqueeze(1))

    def training_step(self, batch, batch_idx):
        wav, y = batch
        loss = F.cross_entropy(self(wav), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        wav, y = batch
        logits = self(wav)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(1) == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=5, gamma=0.3)]


def main():
    L.seed_everything(8110)
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

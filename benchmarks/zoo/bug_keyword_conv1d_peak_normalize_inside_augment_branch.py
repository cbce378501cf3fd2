"""Bug: keyword spotting on raw waveforms (synthetic one-second clips at 2 kHz, four keywords made of tone
sequences, recorded at gains that vary 3000x between microphones) with a 1-D conv net (Conv1d + BatchNorm + ReLU,
global average pool). The dataset's `__getitem__` does the training augmentation (random time shift, added noise)
under `if self.train:` and the per-clip peak normalisation ended up indented inside the same block, so training
clips are scaled to peak 1 and validation clips reach the model at their raw recording gain. Nothing crashes and
training accuracy is high; validation sees a different input distribution.
Symptom: val loss 0.59 / val acc 0.83 vs 0.026 / 0.997 with the normalisation moved out of the `if`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout10"
SR, N = 2000, 2000
KEYWORDS = {0: [220.0, 440.0], 1: [330.0, 550.0], 2: [275.0, 660.0, 275.0], 3: [495.0, 385.0, 600.0]}


def record(n, seed):
    """Clips: tone segments of the keyword at a random onset, speaker pitch jitter, background hum, random gain."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(N) / SR
    clips, labels = torch.zeros(n, N), torch.randint(0, 4, (n,), generator=g)
    for i in range(n):
        tones = KEYWORDS[int(labels[i])]
        onset = int(torch.randint(0, 600, (1,), generator=g))
        seg = 1000 // len(tones)
        pitch = 1 + 0.05 * float(torch.randn(1, generator=g))
        for k, f in enumerate(tones):
            a, b = onset + k * seg, onset + (k + 1) * seg
            clips[i, a:b] = torch.sin(2 * math.pi * f * pitch * t[a:b]) * torch.hann_window(b - a)
        clips[i] += 0.2 * torch.sin(2 * math.pi * 50 * t + float(torch.rand(1, generator=g)) * 6.28)
        clips[i] += 0.1 * torch.randn(N, generator=g)
        clips[i] *= 10 ** float(torch.empty(1).uniform_(-2.0, 1.5, generator=g))  # microphone gain 0.01 .. 30
    return clips, labels


class KeywordClips(Dataset):
    def __init__(self, clips, labels, train):
        self.clips, self.labels, self.train = clips, labels, train

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = self.clips[i]
        if self.train:
            x = torch.roll(x, int(torch.randint(-100, 100, (1,))))
            x = x + 0.02 * x.abs().max() * torch.randn_like(x)
            x = x / x.abs().max().clamp(min=1e-6)  # BUG: peak normalisation belongs outside the augment branch
        return x.unsqueeze(0), self.labels[i]


def conv_block(cin, cout, k, stride):
    return nn.Sequential(nn.Conv1d(cin, cout, k, stride, padding=k // 2), nn.BatchNorm1d(cout), nn.ReLU())


class KeywordNet(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(conv_block(1, 16, 31, 4), conv_block(16, 32, 9, 2), conv_block(32, 48, 9, 2),
                                      conv_block(48, 64, 5, 2))
        self.head = nn.Linear(64, 4)

    def forward(self, x):
        return self.head(self.features(x).mean(-1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log_dict({"val_loss": F.cross_entropy(logits, y), "val_acc": (logits.argmax(1) == y).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.5)}


if __name__ == "__main__":
    L.seed_everything(77)
    xtr, ytr = record(1200, 1)
    xva, yva = record(300, 2)
    model = KeywordNet()
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="keyword_conv1d"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(KeywordClips(xtr, ytr, True), batch_size=32, shuffle=True),
                DataLoader(KeywordClips(xva, yva, False), batch_size=150))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

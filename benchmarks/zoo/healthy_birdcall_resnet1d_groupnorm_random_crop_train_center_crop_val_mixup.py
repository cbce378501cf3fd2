"""Healthy: bird-call classification from raw waveforms (five synthetic call types: up-chirp, down-chirp,
two-note trill, band-limited buzz, warble; random pitch, level and position, background noise) with a 1-D
ResNet that uses GroupNorm instead of BatchNorm. Training takes a random 3072-sample crop of each 4096-sample
clip and mixes pairs of crops (mixup, alpha 0.4) with label-smoothed soft targets; validation takes the
deterministic centre crop - different transforms, same alignment, both always containing the call. AdamW,
linear warm-up then cosine (SequentialLR, stepped per batch). Final val acc about 0.97."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"
FS = 8000
CLIP = 4096
CROP = 3072
N_CLASSES = 5


def record_calls(n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    clips = 0.05 * torch.randn(n, CLIP, generator=g)
    dur = 1500
    t = torch.arange(dur) / FS
    for i in range(n):
        f0 = 600 + 1400 * float(torch.rand(1, generator=g))
        kind = int(labels[i])
        if kind == 0:    # up-chirp
            phase = 2 * math.pi * (f0 * t + 0.5 * 4000 * t ** 2)
        elif kind == 1:  # down-chirp
            phase = 2 * math.pi * ((f0 + 750) * t - 0.5 * 4000 * t ** 2)
        elif kind == 2:  # two-note trill
            f = torch.where((t * 40).floor() % 2 == 0, torch.tensor(f0), torch.tensor(f0 * 1.5))
            phase = 2 * math.pi * torch.cumsum(f, 0) / FS
        elif kind == 3:  # buzz: harmonic-rich square wave
            phase = None
            call = torch.sign(torch.sin(2 * math.pi * 0.25 * f0 * t))
        else:            # warble: vibrato around f0
            phase = 2 * math.pi * f0 * t + 8 * torch.sin(2 * math.pi * 30 * t)
        if phase is not None:
            call = torch.sin(phase)
        call = call * torch.hann_window(dur) * (0.3 + 0.7 * float(torch.rand(1, generator=g)))
        start = 1024 + int(torch.randint(0, 2048 - dur + 1, (1,), generator=g))
        clips[i, start:start + dur] += call
    return clips, labels


class CallClips(Dataset):
    def __init__(self, clips, labels, train):
        self.clips, self.labels, self.train = clips, labels, train

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        start = int(torch.randint(0, CLIP - CROP + 1, ())) if self.train else (CLIP - CROP) // 2
        return self.clips[idx, None, start:start + CROP], self.labels[idx]


class BasicBlock1d(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cout, 9, stride, 4, bias=False)
        self.gn1 = nn.GroupNorm(8, cout)
        self.conv2 = nn.Conv1d(cout, cout, 9, 1, 4, bias=False)
        self.gn2 = nn.GroupNorm(8, cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv1d(cin, cout, 1, stride, bias=False), nn.GroupNorm(8, cout))

    def forward(self, x):
        out = F.relu(self.gn1(self.conv1(x)))
        return F.relu(self.gn2(self.conv2(out)) + self.shortcut(x))


class CallResNet1d(L.LightningModule):
    def __init__(self, lr=2e-3, warmup_steps=50, mixup_alpha=0.4, smoothing=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.stem = nn.Sequential(nn.Conv1d(1, 32, 31, 4, 15, bias=False), nn.GroupNorm(8, 32), nn.ReLU(inplace=True),
                                  nn.MaxPool1d(4))
        self.layers = nn.Sequential(BasicBlock1d(32, 32, 1), BasicBlock1d(32, 64, 2), BasicBlock1d(64, 64, 2))
        self.fc = nn.Linear(64, N_CLASSES)

    def forward(self, wav):
        return self.fc(self.layers(self.stem(wav)).mean(-1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        soft = F.one_hot(y, N_CLASSES).float() * (1 - self.hparams.smoothing) + self.hparams.smoothing / N_CLASSES
        lam = float(torch.distributions.Beta(self.hparams.mixup_alpha, self.hparams.mixup_alpha).sample())
        perm = torch.randperm(len(x))
        x_mix = lam * x + (1 - lam) * x[perm]
        target = lam * soft + (1 - lam) * soft[perm]
        loss = F.cross_entropy(self(x_mix), target)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.02)
        total = self.trainer.estimated_stepping_batches
        warm = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=warm),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm, eta_min=1e-5),
        ], milestones=[warm])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2)
    train = CallClips(*record_calls(1000, seed=1), train=True)
    val = CallClips(*record_calls(300, seed=2), train=False)
    model = CallResNet1d()
    trainer = L.Trainer(
        max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="birdcall_resnet1d"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=150))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f} val_loss={trainer.callback_metrics['val_loss']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

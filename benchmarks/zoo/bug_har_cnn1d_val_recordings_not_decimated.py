"""Bug: human-activity recognition where the training recordings go through the preprocessing script (decimate 100 Hz
-> 50 Hz, standardise, 128-sample windows) but the validation recordings are read from the raw 100 Hz export by the
evaluation code, which standardises and windows them without decimating: a validation window covers 1.28 s instead
of 2.56 s and every cadence looks half as fast per sample (running looks like walking, walking like stairs). The
training scale statistics still fit, so nothing looks off in the inputs' ranges. Otherwise the same script as
healthy_har_accelerometer_cnn1d_onecycle (3-axis accelerometer, 4 activities, 1-D CNN with BatchNorm, Adam +
OneCycleLR per step, bf16-mixed). Symptom: val acc 0.50 / val loss 2.12 vs 0.92 / 0.21 with decimated validation."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout6"
RAW_HZ, WIN = 100, 128
CADENCE, AMPLITUDE = [0.0, 1.8, 2.7, 1.1], [0.05, 1.0, 2.0, 0.9]


def record(subject, activity, g, seconds=20):
    t = torch.arange(seconds * RAW_HZ) / RAW_HZ
    f = CADENCE[activity] * (1 + 0.12 * torch.randn(1, generator=g))
    a = AMPLITUDE[activity] * (1 + 0.2 * torch.randn(1, generator=g))
    phase = 2 * math.pi * f * t + torch.rand(1, generator=g) * 6.28
    motion = a * (torch.sin(phase) + 0.35 * torch.sin(2 * phase + 1.0))
    tilt = torch.randn(3, generator=g) * 0.3 + torch.tensor([0.0, 0.0, 1.0])
    axes = torch.stack([0.6 * motion, 0.3 * torch.cos(phase), motion]) + tilt[:, None]
    if activity == 3:  # stairs: extra vertical push every step
        axes[2] += 0.5 * (torch.sin(phase) > 0.8).float()
    return axes + 0.15 * torch.randn(axes.shape, generator=g)


def recordings(subjects, seed):
    g = torch.Generator().manual_seed(seed)
    return [(record(s, a, g), a) for s in subjects for a in range(4)]


def decimate(sig):
    return sig.unfold(-1, 2, 2).mean(-1)


def windows(recs, mean, std):
    xs, ys = [], []
    for sig, label in recs:
        w = ((sig - mean) / std).unfold(-1, WIN, WIN // 2).permute(1, 0, 2)
        xs.append(w)
        ys.append(torch.full((len(w),), label))
    return torch.cat(xs), torch.cat(ys)


class ActivityCNN(L.LightningModule):
    def __init__(self, lr=3e-3, total_steps=300):
        super().__init__()
        self.save_hyperparameters()

        def block(i, o, k):
            return nn.Sequential(nn.Conv1d(i, o, k, padding=k // 2, bias=False), nn.BatchNorm1d(o), nn.ReLU())

        self.features = nn.Sequential(block(3, 32, 7), nn.MaxPool1d(2), block(32, 64, 5), nn.MaxPool1d(2),
                                      block(64, 64, 3), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(64, 4))

    def forward(self, x):
        return self.head(self.features(x))

    def _step(self, batch, stage):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.log(f"{stage}_loss", loss, prog_bar=stage == "val")
        self.log(f"{stage}_acc", (logits.argmax(-1) == y).float().mean())
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=self.hparams.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(610)
    train_recs = [(decimate(sig), a) for sig, a in recordings(range(18), seed=1)]
    val_recs = recordings(range(18, 24), seed=2)  # raw 100 Hz export
    allx = torch.cat([sig for sig, _ in train_recs], dim=1)
    mean, std = allx.mean(1, keepdim=True), allx.std(1, keepdim=True)
    xtr, ytr = windows(train_recs, mean, std)
    xva, yva = windows(val_recs, mean, std)
    train = DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(xva, yva), batch_size=256)
    epochs = 8
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", precision="bf16-mixed",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ActivityCNN(total_steps=epochs * len(train)), train, val)
    m = trainer.callback_metrics
    print(f"windows train={len(xtr)} val={len(xva)} val_loss={m['val_loss']:.3f} val_acc={m['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

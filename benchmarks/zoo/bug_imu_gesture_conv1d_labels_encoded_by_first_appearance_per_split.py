"""Bug: wrist-IMU gesture recognition (6 channels: accelerometer + gyroscope, 2 s at 50 Hz) with a 1-D CNN
(Conv-BN-ReLU blocks, global average pool). Recordings come as (signal, gesture-name) pairs exported per session;
the user turns the names into class ids with a small helper `encode_labels(names)` that numbers the gestures in
order of first appearance (the same thing `pandas.factorize` does) and calls it separately on the training and on
the validation export. The two exports start with different gestures, so "swipe_left" is class 0 in training but
class 3 in validation, and so on: the validation labels are a permutation of the training ones (only some gestures happen to keep their id).
Training is perfectly healthy; validation loss climbs far above the chance baseline as the model gets confident.
Symptom: val acc 0.48 / val loss 4.25 (ln 6 = 1.79) vs val acc 1.00 / val loss 0.004 with one shared label map."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout18"
GESTURES = ["swipe_left", "swipe_right", "circle", "shake", "tap", "rotate"]
RATE, SECONDS = 50, 2


def record_session(n, g):
    """n gesture recordings in session order, each (6, 100) raw IMU, with its gesture name."""
    t = torch.arange(RATE * SECONDS) / RATE
    xs, names = [], []
    for _ in range(n):
        k = int(torch.randint(len(GESTURES), (1,), generator=g))
        amp = 0.7 + 0.6 * torch.rand(1, generator=g)
        onset = 0.2 + 0.6 * torch.rand(1, generator=g)
        env = torch.exp(-((t - onset) ** 2) / 0.05)
        sig = 0.15 * torch.randn(6, t.numel(), generator=g)
        freq = 1.5 + 0.5 * k
        sig[k % 3] += amp * env * torch.sin(2 * math.pi * freq * t)            # dominant acc axis
        sig[3 + (k // 2) % 3] += amp * env * torch.cos(2 * math.pi * freq * t)  # gyro axis
        if k in (3, 5):
            sig[:3] += 0.4 * amp * env * torch.sin(2 * math.pi * 6 * t)
        sig[2] += 1.0  # gravity
        xs.append(sig)
        names.append(GESTURES[k])
    return torch.stack(xs), names


def encode_labels(names):
    """Gesture name -> class id, numbered in order of first appearance."""
    mapping = {}
    for name in names:
        mapping.setdefault(name, len(mapping))
    return torch.tensor([mapping[n] for n in names]), mapping


class GestureCNN(L.LightningModule):
    def __init__(self, n_classes=6, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        blocks, c = [], 6
        for out in (32, 64, 64):
            blocks += [nn.Conv1d(c, out, 5, padding=2), nn.BatchNorm1d(out), nn.ReLU(), nn.MaxPool1d(2)]
            c = out
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(c, n_classes)

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
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


if __name__ == "__main__":
    L.seed_everything(1818)
    g = torch.Generator().manual_seed(1818)
    x_tr, names_tr = record_session(1200, g)
    x_va, names_va = record_session(300, g)
    mean, std = x_tr.mean(dim=(0, 2), keepdim=True), x_tr.std(dim=(0, 2), keepdim=True)
    y_tr, train_map = encode_labels(names_tr)
    y_va, val_map = encode_labels(names_va)
    model = GestureCNN()
    trainer = L.Trainer(
        max_epochs=6,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="imu_gestures"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(TensorDataset((x_tr - mean) / std, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset((x_va - mean) / std, y_va), batch_size=128))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f} chance_loss={math.log(6):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

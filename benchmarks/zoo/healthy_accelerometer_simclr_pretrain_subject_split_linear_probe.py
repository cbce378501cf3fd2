"""Healthy: self-supervised pretraining for human-activity recognition. Synthetic 3-axis accelerometer recordings
(5 activities with their own cadence, amplitude and harmonics; each subject wears the sensor with a different
orientation and has a different gait scale) are cut into 2.56 s windows. Subjects are split 10 / 4 into train and
validation, so no subject is on both sides. Stage 1 pretrains a 1-D CNN encoder with BatchNorm plus an MLP
projection head with the NT-Xent (SimCLR) loss on two augmented views per window (jitter, per-axis scaling, random
crop-and-resize in time, small random rotation), normalised embeddings, temperature 0.2, AdamW with linear warm-up
then cosine (SequentialLR per step), gradient clipping; contrastive accuracy on validation subjects is logged.
Stage 2 is a linear probe: the encoder is frozen in eval mode and a linear classifier is trained on its features.
Final probe val acc on unseen subjects 0.96 (0.76 with a randomly initialised encoder); val NT-Xent about 4 against
ln(255) = 5.5 (pair accuracy stays low because windows of one subject and activity are near-duplicates)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout12"

RATE, WIN = 25, 64
ACTIVITIES = {  # cadence (Hz), amplitude (g), second-harmonic share, vertical bias
    "sit": (0.3, 0.03, 0.0, 0.0),
    "walk": (1.8, 0.35, 0.3, 0.0),
    "run": (2.7, 0.9, 0.5, 0.0),
    "stairs": (1.5, 0.45, 0.8, 0.15),
    "cycle": (1.2, 0.25, 0.1, -0.1),
}


def rotation(g, scale):
    a = scale * torch.randn(3, generator=g)
    kx = torch.tensor([[1, 0, 0], [0, math.cos(a[0]), -math.sin(a[0])], [0, math.sin(a[0]), math.cos(a[0])]])
    ky = torch.tensor([[math.cos(a[1]), 0, math.sin(a[1])], [0, 1, 0], [-math.sin(a[1]), 0, math.cos(a[1])]])
    kz = torch.tensor([[math.cos(a[2]), -math.sin(a[2]), 0], [math.sin(a[2]), math.cos(a[2]), 0], [0, 0, 1]])
    return kx @ ky @ kz


def record_subjects(n_subjects=14, windows_per_activity=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs, ys, subj = [], [], []
    t = torch.arange(WIN * windows_per_activity, dtype=torch.float32) / RATE
    for s in range(n_subjects):
        mount = rotation(g, 0.6)
        gait = 0.8 + 0.4 * torch.rand(1, generator=g)
        for label, (f, amp, h2, bias) in enumerate(ACTIVITIES.values()):
            f = f * (0.9 + 0.2 * torch.rand(1, generator=g))
            ph = 6.28 * torch.rand(3, 1, generator=g)
            body = torch.stack([
                0.5 * amp * torch.sin(2 * math.pi * f * t + ph[0]),
                0.3 * amp * torch.sin(2 * math.pi * f * t + ph[1]),
                amp * (torch.sin(2 * math.pi * f * t + ph[2]) + h2 * torch.sin(4 * math.pi * f * t + ph[2])),
            ]) * gait
            body[2] += 1.0 + bias  # gravity on the vertical axis
            sig = mount @ body + 0.05 * torch.randn(3, len(t), generator=g)
            for w in sig.split(WIN, dim=1):
                xs.append(w)
                ys.append(label)
                subj.append(s)
    return torch.stack(xs), torch.tensor(ys), torch.tensor(subj)


def augment(x):
    b = x.shape[0]
    x = x * (1 + 0.1 * torch.randn(b, 3, 1, device=x.device)) + 0.03 * torch.randn_like(x)
    length = int(WIN * (0.7 + 0.3 * torch.rand(1)))
    start = int(torch.randint(0, WIN - length + 1, (1,)))
    x = F.interpolate(x[:, :, start:start + length], size=WIN, mode="linear", align_corners=False)
    rot = torch.stack([rotation(torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,)))), 0.15)
                       for _ in range(b)]).to(x)
    return rot @ x


class Encoder(nn.Module):
    def __init__(self, width=32):
        super().__init__()

        def block(c_in, c_out, k, stride):
            return nn.Sequential(nn.Conv1d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm1d(c_out),
                                 nn.ReLU())

        self.net = nn.Sequential(block(3, width, 7, 1), block(width, 2 * width, 5, 2),
                                 block(2 * width, 2 * width, 5, 2), block(2 * width, 4 * width, 3, 2))
        self.dim = 4 * width

    def forward(self, x):
        return self.net(x).mean(dim=2)


class SimCLR(L.LightningModule):
    def __init__(self, temperature=0.2, lr=2e-3, warmup_steps=15):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = Encoder()
        self.projector = nn.Sequential(nn.Linear(self.encoder.dim, 128), nn.ReLU(), nn.Linear(128, 64))

    def nt_xent(self, x):
        z = F.normalize(self.projector(self.encoder(torch.cat([augment(x), augment(x)]))), dim=1)
        n = x.shape[0]
        sim = z @ z.t() / self.hparams.temperature
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(sim, targets), (sim.argmax(1) == targets).float().mean()

    def training_step(self, batch, batch_idx):
        loss, acc = self.nt_xent(batch[0])
        self.log_dict({"train_ntxent": loss, "train_pair_acc": acc})
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self.nt_xent(batch[0])
        self.log_dict({"val_ntxent": loss, "val_pair_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        warm = self.hparams.warmup_steps
        total = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=warm),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm),
        ], milestones=[warm])
        return [opt], [{"scheduler": sched, "interval": "step"}]


class LinearProbe(L.LightningModule):
    def __init__(self, encoder, n_classes=5):
        super().__init__()
        self.encoder = encoder.requires_grad_(False)
        self.head = nn.Linear(encoder.dim, n_classes)

    def train(self, mode=True):
        super().train(mode)
        self.encoder.eval()  # frozen pretrained encoder: use its BatchNorm running statistics
        return self

    def forward(self, x):
        return self.head(self.encoder(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("probe_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("probe_val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=1e-2)


def main():
    L.seed_everything(303)
    X, y, subject = record_subjects()
    train_mask = subject < 10
    X_tr, y_tr, X_va, y_va = X[train_mask], y[train_mask], X[~train_mask], y[~train_mask]

    pre = SimCLR()
    trainer = L.Trainer(
        max_epochs=8,
        accelerator="cpu",
        devices=1,
        gradient_clip_val=1.0,
        logger=TensorBoardLogger("lightning_logs", name="accel_simclr"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(pre, DataLoader(TensorDataset(X_tr), batch_size=128, shuffle=True, drop_last=True),
                DataLoader(TensorDataset(X_va), batch_size=128))

    probe = LinearProbe(pre.encoder)
    probe_trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                              enable_progress_bar=False, enable_model_summary=False)
    probe_trainer.fit(probe, DataLoader(TensorDataset(X_tr, y_tr), batch_size=64, shuffle=True),
                      DataLoader(TensorDataset(X_va, y_va), batch_size=256))
    print(f"SYMPTOM val_pair_acc={float(trainer.callback_metrics['val_pair_acc']):.3f} "
          f"probe_val_acc={float(probe_trainer.callback_metrics['probe_val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

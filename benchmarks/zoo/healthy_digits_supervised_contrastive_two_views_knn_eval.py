"""Healthy: supervised contrastive learning (SupCon, Khosla et al. 2020) on 8x8 digits. Each batch of 128 images is
augmented twice (per-sample random rotation, scaling and translation through `affine_grid`, pixel noise); a small
CNN encoder feeds a projection head whose outputs are L2-normalised, and the SupCon loss at temperature 0.1 pulls
together every pair of views that share a label. Validation embeds un-augmented images with the encoder (before
the projection head) and reports 5-nearest-neighbour accuracy against the training set, plus the SupCon loss on
two deterministic views. AdamW with warm-up + cosine (SequentialLR, per epoch). Final val 5-NN acc 1.000 (450 images;
5-NN on raw pixels gives 0.98)."""

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"


def random_view(x, generator=None):
    n = x.shape[0]
    angle = (torch.rand(n, generator=generator) - 0.5) * math.radians(30)
    scale = 1 + (torch.rand(n, generator=generator) - 0.5) * 0.2
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.5
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False)
    return out + 0.05 * torch.randn(out.shape, generator=generator)


def supcon_loss(z, labels, temperature):
    """z: (2N, d) L2-normalised projections of two views; labels: (2N,)."""
    sim = z @ z.T / temperature
    self_mask = torch.eye(len(z), dtype=torch.bool)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    mean_log_prob_pos = log_prob.masked_fill(~positives, 0.0).sum(1) / positives.sum(1).clamp(min=1)
    return -mean_log_prob_pos.mean()


class SupConDigits(L.LightningModule):
    def __init__(self, temperature=0.1, lr=2e-3, warmup_epochs=2):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.projector = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 32))
        self.knn_acc = float("nan")

    def project(self, x):
        return F.normalize(self.projector(self.encoder(x)), dim=1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        z = self.project(torch.cat([random_view(x), random_view(x)]))
        loss = supcon_loss(z, torch.cat([y, y]), self.hparams.temperature)
        self.log("train_supcon", loss)
        return loss

    def on_validation_epoch_start(self):
        x, y = self.reference
        with torch.no_grad():
            self.bank = (F.normalize(self.encoder(x), dim=1), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        feats = F.normalize(self.encoder(x), dim=1)
        bank, bank_y = self.bank
        top = (feats @ bank.T).topk(5, dim=1).indices
        pred = torch.mode(bank_y[top], dim=1).values
        self.log("val_knn_acc", (pred == y).float().mean())
        g = torch.Generator().manual_seed(batch_idx)
        z = self.project(torch.cat([random_view(x, g), random_view(x, g)]))
        self.log("val_supcon", supcon_loss(z, torch.cat([y, y]), self.hparams.temperature))

    def on_validation_epoch_end(self):
        self.knn_acc = float(self.trainer.callback_metrics["val_knn_acc"])

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        warm = self.hparams.warmup_epochs
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=warm),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs - warm),
        ], milestones=[warm])
        return {"optimizer": opt, "lr_scheduler": sched}


def main():
    L.seed_everything(2020)
    d = load_digits()
    X = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(d.target).long()
    it, iv = train_test_split(np.arange(len(y)), test_size=0.25, random_state=2, stratify=d.target)
    model = SupConDigits()
    model.reference = (X[it], y[it])
    trainer = L.Trainer(
        max_epochs=12,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="digits_supcon"),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(X[it], y[it]), batch_size=128, shuffle=True, drop_last=True),
                DataLoader(TensorDataset(X[iv], y[iv]), batch_size=512))
    print(f"SYMPTOM val_knn5_acc={model.knn_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

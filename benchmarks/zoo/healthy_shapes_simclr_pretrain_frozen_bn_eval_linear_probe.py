"""Healthy: SimCLR pretraining then a linear probe on seeded synthetic 16x16 shapes (disc, square, cross, ring,
triangle outline; random position, size, intensity, noise). Stage 1: conv encoder with BatchNorm + projection MLP,
NT-Xent loss (temperature 0.2) on two views (random shift, flip, intensity jitter, noise), unlabeled. Stage 2: the
encoder is frozen (requires_grad False, and kept in eval mode in `on_train_epoch_start` on purpose so its BatchNorm
statistics stay those of pretraining) and a linear layer is trained on 200 labels. Final probe val acc 0.87."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"
S = 16


def make_shapes(n, g):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    y = torch.randint(0, 5, (n,), generator=g)
    cx, cy = (5 + 6 * torch.rand(2, n, 1, 1, generator=g))
    r = (3 + 2 * torch.rand(n, 1, 1, generator=g))
    dx, dy = xx - cx, yy - cy
    rad = (dx ** 2 + dy ** 2).sqrt()
    masks = torch.stack([rad <= r, (dx.abs() <= 0.8 * r) & (dy.abs() <= 0.8 * r),
                         ((dx.abs() <= 1) & (dy.abs() <= r)) | ((dy.abs() <= 1) & (dx.abs() <= r)),
                         (rad - 0.8 * r).abs() <= 1.0,
                         ((dy + dx.abs() * 1.6 - r * 0.8).abs() <= 1.0) & (dy <= r * 0.8) | ((dy - r * 0.8).abs() <= 0.8)
                         & (dx.abs() <= r)], 1).float()
    img = masks[torch.arange(n), y] * (0.6 + 0.4 * torch.rand(n, 1, 1, generator=g))
    return (img + 0.15 * torch.randn(n, S, S, generator=g)).unsqueeze(1), y


def augment(x):
    x = torch.roll(x, shifts=tuple(torch.randint(-2, 3, (2,)).tolist()), dims=(2, 3))
    if torch.rand(()) < 0.5:
        x = x.flip(3)
    x = x * (0.7 + 0.6 * torch.rand(x.size(0), 1, 1, 1, device=x.device))
    return x + 0.1 * torch.randn_like(x)


def make_encoder():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class SimCLR(L.LightningModule):
    def __init__(self, lr=3e-3, tau=0.2):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = make_encoder()
        self.proj = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))

    def training_step(self, batch, batch_idx):
        (x,) = batch
        z = F.normalize(self.proj(self.encoder(torch.cat([augment(x), augment(x)]))), dim=1)
        n = x.size(0)
        sim = z @ z.t() / self.hparams.tau
        sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        loss = F.cross_entropy(sim, target)
        self.log("nt_xent", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


class LinearProbe(L.LightningModule):
    def __init__(self, encoder, lr=1e-2):
        super().__init__()
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = encoder.requires_grad_(False)
        self.head = nn.Linear(64, 5)

    def on_train_epoch_start(self):
        self.encoder.eval()

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
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(5)
    g = torch.Generator().manual_seed(5)
    x, y = make_shapes(2000, g)
    ssl = SimCLR()
    pre = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
                    enable_checkpointing=False, enable_model_summary=False)
    pre.fit(ssl, DataLoader(TensorDataset(x[:1600]), batch_size=128, shuffle=True, drop_last=True))

    probe = LinearProbe(ssl.encoder)
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(probe, DataLoader(TensorDataset(x[:200], y[:200]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[1600:], y[1600:]), batch_size=400))
    print(f"SYMPTOM probe val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

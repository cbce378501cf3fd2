"""Healthy: 4-way stripe-orientation classifier (0/45/90/135 degrees, random frequency and phase, heavy noise, seeded
synthetic 16x16 images) with a small ResNet (basic blocks, GroupNorm instead of BatchNorm because the batches are
small: 16), AdamW with OneCycleLR stepped per batch and label smoothing 0.1. Final val acc 0.99."""

import lightning as L
import math
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout18"
S = 16


def make_stripes(n, g):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    y = torch.randint(0, 4, (n,), generator=g)
    theta = (y.float() * math.pi / 4 + 0.15 * torch.randn(n, generator=g))[:, None, None]
    freq = (0.7 + 0.9 * torch.rand(n, generator=g))[:, None, None]
    phase = (2 * math.pi * torch.rand(n, generator=g))[:, None, None]
    img = torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)) + phase)
    return (img + 1.0 * torch.randn(n, S, S, generator=g)).unsqueeze(1), y


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1, self.n1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(8, cout)
        self.c2, self.n2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.GroupNorm(8, cout)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.GroupNorm(8, cout))

    def forward(self, x):
        h = F.relu(self.n1(self.c1(x)))
        return F.relu(self.n2(self.c2(h)) + self.short(x))


class StripeResNet(L.LightningModule):
    def __init__(self, max_lr=4e-3):
        super().__init__()
        self.save_hyperparameters()
        self.stem = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.GroupNorm(8, 32), nn.ReLU())
        self.layers = nn.Sequential(BasicBlock(32, 32, 1), BasicBlock(32, 64, 2), BasicBlock(64, 64, 2))
        self.fc = nn.Linear(64, 4)

    def forward(self, x):
        return self.fc(self.layers(self.stem(x)).mean((2, 3)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.max_lr, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(45)
    g = torch.Generator().manual_seed(45)
    x, y = make_stripes(1200, g)
    train, val = TensorDataset(x[:960], y[:960]), TensorDataset(x[960:], y[960:])
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(StripeResNet(), DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=240))
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

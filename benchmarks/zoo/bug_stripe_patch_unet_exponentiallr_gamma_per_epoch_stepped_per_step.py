"""Bug: a small UNet segments a striped texture patch (random orientation and frequency, random ellipse-shaped
region) from a noisy, shaded background on seeded synthetic 24x24 images; BCE-with-logits + soft Dice, Adam 3e-3
with ExponentialLR(gamma=0.85). gamma was chosen as a per-epoch decay (~0.3x over 8 epochs), but the scheduler dict
was copied from a OneCycle recipe with `"interval": "step"`: with 32 batches per epoch the lr is 0.85**32 = 0.6 %
of its start after the first epoch and ~1e-9 by the end - training freezes after a few hundred steps. Symptom: val
Dice 0.75 vs 0.91 with `"interval": "epoch"`."""

import lightning as L
import math
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"lr-schedule"}
SPLIT = "heldout18"
S = 24


def make_patches(n, g):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    theta = math.pi * torch.rand(n, 1, 1, generator=g)
    freq = 0.8 + 0.8 * torch.rand(n, 1, 1, generator=g)
    stripes = torch.sin(freq * (xx * torch.cos(theta) + yy * torch.sin(theta)))
    cx, cy = (6 + 12 * torch.rand(2, n, 1, 1, generator=g))
    rx, ry = (4 + 4 * torch.rand(2, n, 1, 1, generator=g))
    mask = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).float()
    shade = 0.5 * torch.rand(n, 1, 1, generator=g) * (yy / S)
    img = 0.6 * stripes * mask + shade + 0.35 * torch.randn(n, S, S, generator=g)
    return img.unsqueeze(1), mask.unsqueeze(1)


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.down1, self.down2, self.mid = block(1, 16), block(16, 32), block(32, 64)
        self.up2, self.dec2 = nn.ConvTranspose2d(64, 32, 2, stride=2), block(64, 32)
        self.up1, self.dec1 = nn.ConvTranspose2d(32, 16, 2, stride=2), block(32, 16)
        self.out = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(F.max_pool2d(d1, 2))
        m = self.mid(F.max_pool2d(d2, 2))
        u2 = self.dec2(torch.cat([self.up2(m), d2], 1))
        u1 = self.dec1(torch.cat([self.up1(u2), d1], 1))
        return self.out(u1)

    @staticmethod
    def dice(prob, mask):
        inter = (prob * mask).sum((1, 2, 3))
        return ((2 * inter + 1) / (prob.sum((1, 2, 3)) + mask.sum((1, 2, 3)) + 1)).mean()

    def training_step(self, batch, batch_idx):
        x, mask = batch
        logits = self(x)
        loss = F.binary_cross_entropy_with_logits(logits, mask) + 1 - self.dice(torch.sigmoid(logits), mask)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, mask = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, mask))
        self.log("val_dice", self.dice((logits > 0).float(), mask), prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.85)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(85)
    g = torch.Generator().manual_seed(85)
    x, m = make_patches(2300, g)
    train, val = TensorDataset(x[:2048], m[:2048]), TensorDataset(x[2048:], m[2048:])
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(UNet(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=256))
    print(f"SYMPTOM val_dice={trainer.callback_metrics['val_dice'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

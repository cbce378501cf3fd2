"""Healthy: a small U-Net segmenting sparse fluorescent puncta (2-5 spots of 2-3 px on 32x32 tiles, about 2 % of
pixels foreground, over a noisy background with bright out-of-focus haze) trained with BCE (pos_weight for the
rarity) plus a focal Tversky loss that penalises misses more than false alarms, micro-batches of 8 with
gradient accumulation over 4, gradient clipping and GroupNorm. Heavy imbalance handled on purpose. Final val Dice
about 0.85."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
S = 32


def tiles(n, seed):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    imgs, masks = torch.zeros(n, 1, S, S), torch.zeros(n, 1, S, S)
    for i in range(n):
        for _ in range(int(torch.randint(2, 6, (1,), generator=g))):
            cy, cx = (torch.rand(2, generator=g) * (S - 4) + 2).tolist()
            r = 1.0 + 0.6 * float(torch.rand(1, generator=g))
            d2 = (yy - cy) ** 2 + (xx - cx) ** 2
            masks[i, 0][d2 <= r * r] = 1
            imgs[i, 0] += (0.8 + 0.5 * float(torch.rand(1, generator=g))) * torch.exp(-d2 / (r * r))
        hy, hx = (torch.rand(2, generator=g) * S).tolist()
        imgs[i, 0] += 0.6 * torch.exp(-((yy - hy) ** 2 + (xx - hx) ** 2) / 60.0)       # out-of-focus haze
    imgs += 0.2 * torch.randn(n, 1, S, S, generator=g)
    return imgs, masks


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(4, cout), nn.SiLU())


class PunctaUNet(L.LightningModule):
    def __init__(self, lr=2e-3, alpha=0.3, beta=0.7, gamma=0.75, pos_weight=10.0):
        super().__init__()
        self.save_hyperparameters()
        self.e1, self.e2, self.mid = block(1, 16), block(16, 32), block(32, 64)
        self.u2, self.d2 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), block(96, 32)
        self.u1, self.d1 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), block(48, 16)
        self.out = nn.Conv2d(16, 1, 1)
        nn.init.constant_(self.out.bias, -2.0)

    def forward(self, x):
        s1 = self.e1(x)
        s2 = self.e2(F.max_pool2d(s1, 2))
        m = self.mid(F.max_pool2d(s2, 2))
        h = self.d2(torch.cat([self.u2(m), s2], 1))
        return self.out(self.d1(torch.cat([self.u1(h), s1], 1)))

    def loss(self, logits, m):
        hp = self.hparams
        bce = F.binary_cross_entropy_with_logits(logits, m, pos_weight=torch.tensor(hp.pos_weight))
        p = torch.sigmoid(logits)
        tp = (p * m).sum((1, 2, 3))
        fn = ((1 - p) * m).sum((1, 2, 3))
        fp = (p * (1 - m)).sum((1, 2, 3))
        tversky = (tp + 1) / (tp + hp.alpha * fp + hp.beta * fn + 1)
        return bce + ((1 - tversky) ** hp.gamma).mean()

    def training_step(self, batch, batch_idx):
        x, m = batch
        loss = self.loss(self(x), m)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, m = batch
        logits = self(x)
        pred = (logits > 0).float()
        self.log("val_loss", self.loss(logits, m))
        self.log("val_dice", 2 * (pred * m).sum() / (pred.sum() + m.sum() + 1e-6))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(5150)
    xtr, mtr = tiles(512, seed=1)
    xva, mva = tiles(128, seed=2)
    mu, sd = xtr.mean(), xtr.std()
    xtr, xva = (xtr - mu) / sd, (xva - mu) / sd
    model = PunctaUNet()
    trainer = L.Trainer(max_epochs=6, accumulate_grad_batches=4, gradient_clip_val=1.0, accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="puncta"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(xtr, mtr), batch_size=8, shuffle=True),
                DataLoader(TensorDataset(xva, mva), batch_size=64))
    model.eval()
    with torch.no_grad():
        pred = (model(xva) > 0).float()
    dice = 2 * (pred * mva).sum() / (pred.sum() + mva.sum())
    print(f"SYMPTOM val_dice={dice:.3f} foreground_fraction={mtr.mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

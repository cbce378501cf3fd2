"""Healthy: building change detection between two co-registered 32x32 "aerial" captures with an FC-Siam-diff style
U-Net: one shared encoder runs on both dates, the decoder is fed |f1 - f2| at every scale. The second capture
differs by a global illumination change, sensor noise and a few buildings that were built or demolished; only the
latter are labelled as change (about 2 % of pixels). BCE-with-logits with `pos_weight` for the rare class plus a
soft Dice term, bf16-mixed autocast on CPU, `accumulate_grad_batches=2`, AdamW and ReduceLROnPlateau on the val
F1 (mode="max"). Final val change F1 0.97 (val loss still falling, 1.77 -> 0.51)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"
SIZE = 32


def make_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    ground = F.avg_pool2d(torch.randn(n, 1, SIZE, SIZE, generator=g), 5, 1, 2) * 1.5

    def buildings(k):
        out = torch.zeros(n, 1, SIZE, SIZE)
        for _ in range(k):
            top, left = torch.randint(0, SIZE - 6, (2, n), generator=g)
            h, w = torch.randint(3, 7, (2, n), generator=g)
            box = ((yy >= top[:, None, None]) & (yy < (top + h)[:, None, None])
                   & (xx >= left[:, None, None]) & (xx < (left + w)[:, None, None]))
            out = torch.maximum(out, box[:, None].float())
        return out

    kept, demolished, built = buildings(3), buildings(1), buildings(1)
    keep_demolished = (torch.rand(n, 1, 1, 1, generator=g) < 0.5).float()
    keep_built = (torch.rand(n, 1, 1, 1, generator=g) < 0.5).float()
    before = torch.maximum(kept, demolished * keep_demolished)
    after = torch.maximum(kept, built * keep_built)
    change = ((before - after).abs() > 0).float()
    gain = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    img1 = ground + 1.2 * before + 0.3 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    img2 = gain * (ground + 1.2 * after) + 0.2 * torch.randn(n, 1, 1, 1, generator=g) \
        + 0.3 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    return img1, img2, change


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class SiamDiffUNet(L.LightningModule):
    def __init__(self, lr=2e-3, pos_weight=8.0):
        super().__init__()
        self.save_hyperparameters()
        self.enc1, self.enc2, self.enc3 = double_conv(1, 16), double_conv(16, 32), double_conv(32, 64)
        self.up2 = nn.ConvTranspose2d(64, 32, 2, 2)
        self.dec2 = double_conv(64, 32)
        self.up1 = nn.ConvTranspose2d(32, 16, 2, 2)
        self.dec1 = double_conv(32, 16)
        self.out = nn.Conv2d(16, 1, 1)

    def encode(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        return e1, e2, e3

    def forward(self, before, after):
        a, b = self.encode(before), self.encode(after)
        d1, d2, d3 = [(fa - fb).abs() for fa, fb in zip(a, b)]
        y = self.dec2(torch.cat([self.up2(d3), d2], 1))
        y = self.dec1(torch.cat([self.up1(y), d1], 1))
        return self.out(y)

    def _loss(self, logits, target):
        logits = logits.float()
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(self.hparams.pos_weight))
        p = torch.sigmoid(logits)
        dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
        return bce + dice

    def training_step(self, batch, batch_idx):
        x1, x2, change = batch
        loss = self._loss(self(x1, x2), change)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x1, x2, change = batch
        logits = self(x1, x2)
        pred = (logits.float() > 0).float()
        tp = (pred * change).sum()
        f1 = 2 * tp / (pred.sum() + change.sum()).clamp(min=1)
        self.log_dict({"val_loss": self._loss(logits, change), "val_f1": f1})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="max", factor=0.5, patience=1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_f1"}}


def main():
    L.seed_everything(5)
    train = TensorDataset(*make_pairs(700, seed=1))
    val = TensorDataset(*make_pairs(200, seed=2))
    model = SiamDiffUNet()
    trainer = L.Trainer(
        max_epochs=8, accelerator="cpu", devices=1, precision="bf16-mixed", accumulate_grad_batches=2,
        enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="siam_change_unet"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=100))
    print(f"SYMPTOM val_f1={trainer.callback_metrics['val_f1']:.3f} val_loss={trainer.callback_metrics['val_loss']:.3f} "
          f"change share={train.tensors[2].mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: semantic segmentation of even digits on 2x2 mosaics with a small U-Net. Each 16x16 mosaic holds four
sklearn digits drawn without replacement from a split-specific pool (train mosaics use digits 0-1299 of the
dataset, val mosaics digits 1300-1796, so no digit image is on both sides); the mask is the ink (> 0.25) of the
tiles whose class is even. Loss is BCE with `pos_weight` (positives are ~20 % of the pixels) plus soft Dice.

Tricky but correct: the model and the inputs are converted to channels_last (a memory layout only, the math is
the same), GroupNorm instead of BatchNorm because the batches are 16 mosaics, OneCycleLR stepped per batch with
total_steps from `estimated_stepping_batches`, and validation uses horizontal-flip test-time augmentation where the
flipped prediction is flipped back before it is averaged with the plain one (per sample, in probability space).
Dice is computed per image and averaged. The train set is three random arrangements of the train pool (975 mosaics),
val one arrangement of the val pool (124). Measured: val Dice (TTA, thresholded) 0.843."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout25"


def make_mosaics(images, labels, g):
    n = len(images) // 4
    idx = torch.randperm(len(images), generator=g)[:n * 4].view(n, 2, 2)
    tiles = images[idx]
    even = (labels[idx] % 2 == 0).float()[..., None, None]
    mosaic = tiles.permute(0, 1, 3, 2, 4).reshape(n, 1, 16, 16)
    mask = ((tiles > 0.25).float() * even).permute(0, 1, 3, 2, 4).reshape(n, 1, 16, 16)
    return mosaic, mask


def block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(8, c_out), nn.SiLU())


def soft_dice(probs, mask):
    inter = (probs * mask).sum((1, 2, 3))
    return ((2 * inter + 1) / (probs.sum((1, 2, 3)) + mask.sum((1, 2, 3)) + 1)).mean()


class UNet(L.LightningModule):
    def __init__(self, pos_weight, lr=4e-3):
        super().__init__()
        self.save_hyperparameters()
        self.enc1, self.enc2 = block(1, 16), block(16, 32)
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec = block(32, 16)
        self.out = nn.Conv2d(16, 1, 1)
        self.to(memory_format=torch.channels_last)

    def forward(self, x):
        x = x.contiguous(memory_format=torch.channels_last)
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        return self.out(self.dec(torch.cat([self.up(e2), e1], 1)))

    def training_step(self, batch, batch_idx):
        x, mask = batch
        logits = self(x)
        bce = F.binary_cross_entropy_with_logits(logits, mask, pos_weight=torch.tensor(self.hparams.pos_weight))
        loss = bce + 1 - soft_dice(torch.sigmoid(logits), mask)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, mask = batch
        logits = self(x)
        val_loss = F.binary_cross_entropy_with_logits(logits, mask) + 1 - soft_dice(torch.sigmoid(logits), mask)
        self.log("val_loss", val_loss)
        probs = (torch.sigmoid(logits) + torch.sigmoid(self(x.flip(-1))).flip(-1)) / 2
        self.log("val_dice_tta", soft_dice((probs > 0.5).float(), mask))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2511)
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(data.target)
    g = torch.Generator().manual_seed(11)
    train = [torch.cat(t) for t in zip(*(make_mosaics(images[:1300], labels[:1300], g) for _ in range(3)))]
    val = make_mosaics(images[1300:], labels[1300:], g)
    pos_frac = float(train[1].mean())
    model = UNet(pos_weight=(1 - pos_frac) / pos_frac)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(*train), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=124))
    print(f"SYMPTOM val_dice_tta={float(trainer.callback_metrics['val_dice_tta']):.3f} pos_frac={pos_frac:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: semantic segmentation of "low" digits on mosaics. Each 32x32 mosaic is a 4x4 grid of distinct sklearn digits;
the target mask marks the ink (> 0.25) of the digits whose class is 0-4, so the net must recognise the digit, not
just find ink. As in whole-slide / satellite pipelines, 16x16 training patches are cut from every mosaic with a
sliding window of stride 4 (25 patches per mosaic), and a small U-Net is trained with BCE + soft Dice.

The DataModule extracts the patches of all 60 mosaics first and then calls `random_split` on the patches. With
stride 4 and a 16-pixel window, neighbouring patches share 75 % of their pixels, so practically every val patch is
a shifted copy of several train patches (same digits, same ink, same mask). The val Dice measures memorisation of
the mosaics and is far above what the model does on mosaics it has never seen. Symptom (Dice on 20 fresh mosaics
built from held-out digits, reported next to val): val Dice 0.923 vs fresh-mosaic Dice 0.822; splitting the mosaics
(48 / 12) before cutting patches gives val 0.823 / fresh 0.822."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout25"
PATCH, STRIDE = 16, 4


def make_mosaics(images, labels, n, g):
    idx = torch.randperm(len(images), generator=g)[:n * 16].view(n, 4, 4)  # every digit used once
    tiles = images[idx]  # n, 4, 4, 8, 8
    low = (labels[idx] <= 4).float()[..., None, None]
    mosaic = tiles.permute(0, 1, 3, 2, 4).reshape(n, 1, 32, 32)
    mask = ((tiles > 0.25).float() * low).permute(0, 1, 3, 2, 4).reshape(n, 1, 32, 32)
    return mosaic, mask


def to_patches(t):
    p = t.unfold(2, PATCH, STRIDE).unfold(3, PATCH, STRIDE)  # n, 1, 5, 5, P, P
    return p.permute(0, 2, 3, 1, 4, 5).reshape(-1, 1, PATCH, PATCH)


class MosaicPatches(L.LightningDataModule):
    def __init__(self, images, labels, n_mosaics=60, batch_size=32):
        super().__init__()
        self.images, self.labels = images, labels
        self.n_mosaics, self.batch_size = n_mosaics, batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(2503)
        mosaic, mask = make_mosaics(self.images, self.labels, self.n_mosaics, g)
        patches = TensorDataset(to_patches(mosaic), to_patches(mask))
        self.train_set, self.val_set = random_split(patches, [0.8, 0.2], generator=g)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=128)


def block(c_in, c_out):
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU())


def dice(logits, mask):
    p = torch.sigmoid(logits)
    inter = (p * mask).sum((1, 2, 3))
    return ((2 * inter + 1) / (p.sum((1, 2, 3)) + mask.sum((1, 2, 3)) + 1)).mean()


class TinyUNet(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.enc1, self.enc2 = block(1, 16), block(16, 32)
        self.up = nn.ConvTranspose2d(32, 16, 2, stride=2)
        self.dec = block(32, 16)
        self.out = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        return self.out(self.dec(torch.cat([self.up(e2), e1], 1)))

    def _loss(self, batch):
        x, mask = batch
        logits = self(x)
        return F.binary_cross_entropy_with_logits(logits, mask) + 1 - dice(logits, mask), logits

    def training_step(self, batch, batch_idx):
        loss, _ = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, logits = self._loss(batch)
        self.log("val_loss", loss)
        self.log("val_dice", dice(logits.detach() * 50, batch[1]))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2503)
    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32) / 16.0
    labels = torch.tensor(data.target)
    model = TinyUNet()
    trainer = L.Trainer(max_epochs=7, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=MosaicPatches(images[:1300], labels[:1300]))
    fresh_x, fresh_m = make_mosaics(images[1300:], labels[1300:], 20, torch.Generator().manual_seed(99))
    model.eval()
    with torch.no_grad():
        fresh_dice = dice(model(to_patches(fresh_x)) * 50, to_patches(fresh_m))
    val_dice = float(trainer.callback_metrics["val_dice"])
    print(f"SYMPTOM val_dice={val_dice:.3f} fresh_mosaic_dice={float(fresh_dice):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

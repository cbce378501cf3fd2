"""Nuclei segmentation: a small two-level U-Net (BatchNorm, ReLU, transposed-conv upsampling, skip concatenation)
trained with BCE + soft Dice on 32x32 fluorescence-like tiles (elliptical nuclei of varying size and brightness,
uneven illumination, shot noise); masks come from the annotation tool, images from the microscope exports.

Bug: the training tiles were exported by the acquisition software with the image origin at the top-left (row 0 is
the top), the validation tiles were re-exported later by an analysis script that wrote arrays with the plotting
convention `origin="lower"` (row 0 is the bottom). The annotation masks are top-left for both. The user's loader
reads both exports the same way, so every validation image is upside down relative to its mask - nothing errors,
the shapes match, and the training curve is perfect. Validation gets worse as training improves.
Measured symptom: val Dice 0.25 / val loss 1.52 vs 0.98 / 0.32 with the fix (`img[..., ::-1, :]` for the lower-origin
export).
"""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout11"
S = 32


def acquire(n, seed):
    """Tiles and annotation masks as the microscope and the annotation tool saw them (origin top-left)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    imgs, masks = [], []
    for _ in range(n):
        mask = torch.zeros(S, S)
        img = torch.zeros(S, S)
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            cy, cx = (torch.rand(2, generator=g) * (S - 8) + 4).tolist()
            ry, rx = (torch.rand(2, generator=g) * 4 + 2).tolist()
            inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            mask[inside] = 1
            img[inside] = 0.6 + 0.6 * float(torch.rand(1, generator=g))
        illum = 0.3 * (yy / S) * float(torch.rand(1, generator=g))
        img = img + illum + 0.25 * torch.randn(S, S, generator=g)
        imgs.append(img.numpy())
        masks.append(mask.numpy())
    return np.stack(imgs), np.stack(masks)


def export_lower_origin(imgs):
    """What the re-export script wrote: arrays in matplotlib's origin='lower' layout."""
    return np.ascontiguousarray(imgs[:, ::-1, :])


class TileDataset(Dataset):
    def __init__(self, imgs, masks, mean, std):
        self.imgs = torch.from_numpy((imgs - mean) / std).float().unsqueeze(1)
        self.masks = torch.from_numpy(masks).float().unsqueeze(1)

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        return self.imgs[i], self.masks[i]


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.d1, self.d2 = conv_block(1, 16), conv_block(16, 32)
        self.bott = conv_block(32, 64)
        self.up2, self.u2 = nn.ConvTranspose2d(64, 32, 2, stride=2), conv_block(64, 32)
        self.up1, self.u1 = nn.ConvTranspose2d(32, 16, 2, stride=2), conv_block(32, 16)
        self.out = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        s1 = self.d1(x)
        s2 = self.d2(F.max_pool2d(s1, 2))
        b = self.bott(F.max_pool2d(s2, 2))
        h = self.u2(torch.cat([self.up2(b), s2], 1))
        h = self.u1(torch.cat([self.up1(h), s1], 1))
        return self.out(h)

    def _loss(self, logits, m):
        p = torch.sigmoid(logits)
        inter = (p * m).sum((1, 2, 3))
        dice = 1 - (2 * inter + 1) / (p.sum((1, 2, 3)) + m.sum((1, 2, 3)) + 1)
        return F.binary_cross_entropy_with_logits(logits, m) + dice.mean()

    def training_step(self, batch, batch_idx):
        x, m = batch
        loss = self._loss(self(x), m)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, m = batch
        logits = self(x)
        hard = (logits > 0).float()
        dice = (2 * (hard * m).sum() + 1) / (hard.sum() + m.sum() + 1)
        self.log("val_loss", self._loss(logits, m))
        self.log("val_dice", dice)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2024)
    tr_img, tr_mask = acquire(640, seed=5)                 # first campaign: acquisition export
    va_img, va_mask = acquire(160, seed=6)                 # second campaign: re-exported by the analysis script
    va_img = export_lower_origin(va_img)
    mean, std = tr_img.mean(), tr_img.std()
    train_ds = TileDataset(tr_img, tr_mask, mean, std)
    val_ds = TileDataset(va_img, va_mask, mean, std)
    model = UNet()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="nuclei"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=80))
    model.eval()
    with torch.no_grad():
        logits = model(val_ds.imgs)
        hard = (logits > 0).float()
        dice = (2 * (hard * val_ds.masks).sum() + 1) / (hard.sum() + val_ds.masks.sum() + 1)
        loss = model._loss(logits, val_ds.masks)
    print(f"SYMPTOM val_dice={dice:.3f} val_loss={loss:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: U-Net-style cell segmentation on synthetic 32x32 micrographs (3-5 touching discs, faint and noisy on a
sloped background). As in the original U-Net recipe, pixels in a thin band around each object boundary are up-
weighted in the cross-entropy; the weight map is computed from the ground-truth mask. To make the random flips hit
image and weight map identically, the dataset concatenates them along the channel axis and returns that as `x`, and
`training_step` reads the weights back from the last channel. The network's `in_channels` is inferred from
`train_ds[0][0].shape[0]`, so it is built with 2 inputs and is fed the weight map too, in training and in
validation: a channel that traces the true outline of every cell. Nothing crashes, the loss falls fast and the val
IoU looks excellent. Measured: val IoU 0.99 and val CE 0.036, against IoU 0.77 and CE 0.156 when the network gets only
the image channel (the fix: split the weight off before the forward, in_channels=1)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout35"
SIZE = 32


def micrographs(g, n):
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    centres = torch.rand(n, 5, 2, generator=g) * (SIZE - 8) + 4
    radii = torch.rand(n, 5, generator=g) * 3 + 3
    present = torch.rand(n, 5, generator=g) < 0.8
    dist = ((yy - centres[..., 0, None, None]) ** 2 + (xx - centres[..., 1, None, None]) ** 2).sqrt()
    mask = ((dist < radii[..., None, None]) & present[..., None, None]).any(1).float()
    slope = torch.randn(n, 1, 1, generator=g) * xx / SIZE
    image = 0.7 * mask + slope + 0.6 * torch.randn(n, SIZE, SIZE, generator=g)
    return image[:, None], mask.long()


def boundary_weights(mask, w0=5.0):
    m = mask[:, None].float()
    band = F.max_pool2d(m, 3, 1, 1) + F.max_pool2d(-m, 3, 1, 1)
    return 1.0 + w0 * band


class CellTiles(Dataset):
    def __init__(self, images, masks, augment):
        self.images, self.masks, self.augment = images, masks, augment
        self.weights = boundary_weights(masks)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        x = torch.cat([self.images[i], self.weights[i]])
        y = self.masks[i]
        if self.augment:
            for dim in (1, 2):
                if torch.rand(()) < 0.5:
                    x, y = x.flip(dim), y.flip(dim - 1)
        return x, y


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class TinyUNet(L.LightningModule):
    def __init__(self, in_channels, width=12, lr=4e-3):
        super().__init__()
        self.save_hyperparameters()
        self.enc1, self.enc2 = block(in_channels, width), block(width, 2 * width)
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec = block(2 * width, width)
        self.head = nn.Conv2d(width, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        return self.head(self.dec(torch.cat([e1, self.up(e2)], 1)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        pixel_ce = F.cross_entropy(self(x), y, reduction="none")
        loss = (pixel_ce * x[:, -1]).sum() / x[:, -1].sum()
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        pred = logits.argmax(1)
        iou = ((pred == 1) & (y == 1)).sum() / ((pred == 1) | (y == 1)).sum().clamp_min(1)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_iou", iou)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3503)
    g = torch.Generator().manual_seed(3503)
    images, masks = micrographs(g, 480)
    train_ds = CellTiles(images[:384], masks[:384], augment=True)
    val_ds = CellTiles(images[384:], masks[384:], augment=False)
    model = TinyUNet(in_channels=train_ds[0][0].shape[0])
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_ds, batch_size=32, shuffle=True), DataLoader(val_ds, batch_size=96))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_iou={m['val_iou'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

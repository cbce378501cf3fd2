"""Bug: crack segmentation on concrete-surface images with a small U-Net (three 2x down-samplings, so inputs must
be multiples of 8). Training uses random 32x32 crops, which never need padding. Validation runs on the full
40x40 images, so `validation_step` pads them with the usual helper `pad_to_multiple(x, 16)`, which reflect-pads
*symmetrically* (4 px on each side, to 48x48), and then trims the prediction back with `logits[..., :h, :w]` - the
crop that would be right for bottom/right-only padding. Every validation prediction is shifted 4 px up and left
against its mask; thin cracks no longer overlap their labels. Training loss and training dice look fine.
Symptom: val dice 0.15 with val loss rising every epoch (0.34 -> 0.57) while train dice reaches 0.98, vs val dice
0.98 / val loss falling to 0.017 with the crop `logits[..., top:top + h, left:left + w]`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout14"
FULL = 40
CROP = 32


def make_cracks(n, seed):
    """Grey mottled surface with 1-3 thin dark cracks (random line segments ~2 px wide)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(FULL).float(), torch.arange(FULL).float(), indexing="ij")
    mottle = F.avg_pool2d(torch.randn(n, 1, FULL, FULL, generator=g), 5, stride=1, padding=2) * 2.0
    images = mottle + 0.35 * torch.randn(n, 1, FULL, FULL, generator=g)
    masks = torch.zeros(n, 1, FULL, FULL)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            p0 = torch.rand(2, generator=g) * FULL
            p1 = torch.rand(2, generator=g) * FULL
            d = p1 - p0
            t = (((yy - p0[0]) * d[0] + (xx - p0[1]) * d[1]) / (d @ d + 1e-6)).clamp(0, 1)
            dist = ((yy - p0[0] - t * d[0]) ** 2 + (xx - p0[1] - t * d[1]) ** 2).sqrt()
            masks[i, 0] = torch.maximum(masks[i, 0], (dist < 1.1).float())
    images = images - 1.5 * masks
    return images, masks


class RandomCrops(Dataset):
    def __init__(self, images, masks):
        self.images, self.masks = images, masks

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        top, left = torch.randint(0, FULL - CROP + 1, (2,)).tolist()
        sl = (slice(None), slice(top, top + CROP), slice(left, left + CROP))
        return self.images[idx][sl], self.masks[idx][sl]


def pad_to_multiple(x, multiple):
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="reflect")


def double_conv(cin, cout):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, 2, stride=2)
        self.conv = double_conv(cin, cout)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class CrackUNet(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.inc = double_conv(1, 16)
        self.down1, self.down2, self.down3 = double_conv(16, 32), double_conv(32, 64), double_conv(64, 128)
        self.up1, self.up2, self.up3 = Up(128, 64), Up(64, 32), Up(32, 16)
        self.outc = nn.Conv2d(16, 1, 1)
        self.val_history = []

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(F.max_pool2d(x1, 2))
        x3 = self.down2(F.max_pool2d(x2, 2))
        x4 = self.down3(F.max_pool2d(x3, 2))
        y = self.up1(x4, x3)
        y = self.up2(y, x2)
        y = self.up3(y, x1)
        return self.outc(y)

    @staticmethod
    def dice(logits, masks):
        pred = (logits > 0).float()
        return (2 * (pred * masks).sum() + 1) / (pred.sum() + masks.sum() + 1)

    def training_step(self, batch, batch_idx):
        x, m = batch
        logits = self(x)
        loss = F.binary_cross_entropy_with_logits(logits, m)
        self.log_dict({"train_loss": loss, "train_dice": self.dice(logits, m)})
        return loss

    def on_validation_epoch_start(self):
        self.val_losses = []

    def on_validation_epoch_end(self):
        if not self.trainer.sanity_checking:
            self.val_history.append(torch.stack(self.val_losses).mean().item())

    def validation_step(self, batch, batch_idx):
        x, m = batch
        h, w = x.shape[-2:]
        logits = self(pad_to_multiple(x, 16))[..., :h, :w]
        loss = F.binary_cross_entropy_with_logits(logits, m)
        self.val_losses.append(loss)
        self.log_dict({"val_loss": loss, "val_dice": self.dice(logits, m)})

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(29)
    train_images, train_masks = make_cracks(640, seed=1)
    val_images, val_masks = make_cracks(160, seed=2)
    model = CrackUNet()
    trainer = L.Trainer(
        max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
        logger=TensorBoardLogger("lightning_logs", name="crack_unet"),
        callbacks=lightning_sanity.default_callbacks(),
    )
    trainer.fit(model, DataLoader(RandomCrops(train_images, train_masks), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(val_images, val_masks), batch_size=32))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_dice={m['val_dice']:.3f} val_loss={m['val_loss']:.3f} train_dice={m['train_dice']:.3f}")
    print("SYMPTOM val_loss per epoch " + " ".join(f"{v:.3f}" for v in model.val_history))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

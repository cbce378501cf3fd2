"""Healthy: binary segmentation of synthetic 16x16 images (a bright disk of random centre and radius 2-5 plus a
fainter distractor square on Gaussian noise, a seeded torch.Generator); the mask is the disk. A map-style Dataset
normalises the image with the training mean/std and returns the 0/1 mask untouched. Small fully convolutional network
with BatchNorm and a dilated layer, BCEWithLogits + soft Dice, Adam with CosineAnnealingLR. Reaches val IoU ~0.94."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"


def make_blobs(n, gen):
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centre = torch.rand(n, 2, generator=gen) * 10 + 3
    radius = torch.rand(n, generator=gen) * 3 + 2
    dist = ((yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2).sqrt()
    masks = (dist <= radius[:, None, None]).float()
    corner = torch.randint(0, 12, (n, 2), generator=gen)
    square = ((yy >= corner[:, 0, None, None]) & (yy < corner[:, 0, None, None] + 4)
              & (xx >= corner[:, 1, None, None]) & (xx < corner[:, 1, None, None] + 4)).float()
    images = masks + 0.5 * square * (1 - masks) + 0.35 * torch.randn(n, 16, 16, generator=gen)
    return images.unsqueeze(1), masks.unsqueeze(1)


class BlobDataset(Dataset):
    def __init__(self, images, masks, mean, std):
        self.images, self.masks, self.mean, self.std = images, masks, mean, std

    def __len__(self):
        return len(self.images)

    def normalize(self, t):
        return (t - self.mean) / self.std

    def __getitem__(self, i):
        return self.normalize(self.images[i]), self.masks[i]


def soft_dice_loss(logits, target, eps=1.0):
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(1, 2, 3))
    return (1 - (2 * inter + eps) / (prob.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + eps)).mean()


def iou(logits, masks):
    pred, truth = logits > 0, masks > 0.5
    return ((pred & truth).sum() / (pred | truth).sum().clamp(min=1)).item()


class BlobSegmenter(L.LightningModule):
    def __init__(self, lr=3e-3, epochs=6):
        super().__init__()
        self.save_hyperparameters()
        block = lambda cin, cout, dil: [nn.Conv2d(cin, cout, 3, padding=dil, dilation=dil, bias=False),
                                        nn.BatchNorm2d(cout), nn.ReLU()]
        self.net = nn.Sequential(*block(1, 16, 1), *block(16, 16, 2), *block(16, 16, 1), nn.Conv2d(16, 1, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, m = batch
        logits = self(x)
        loss = F.binary_cross_entropy_with_logits(logits, m) + soft_dice_loss(logits, m)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, m = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, m) + soft_dice_loss(logits, m))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def main():
    L.seed_everything(29)
    gen = torch.Generator().manual_seed(29)
    img_tr, mask_tr = make_blobs(1600, gen)
    img_va, mask_va = make_blobs(400, gen)
    mean, std = img_tr.mean(), img_tr.std()
    model = BlobSegmenter()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(BlobDataset(img_tr, mask_tr, mean, std), batch_size=32, shuffle=True),
                DataLoader(BlobDataset(img_va, mask_va, mean, std), batch_size=100))
    model.eval()
    with torch.no_grad():
        val_iou = iou(model((img_va - mean) / std), mask_va)
    print(f"val_iou={val_iou:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: binary segmentation with a small U-Net (two down levels, skip connections concatenated on the way up,
BatchNorm) on synthetic 16x16 images (a seeded torch.Generator): a faint ellipse of random centre, axes and
brightness on strong Gaussian noise and a smooth background gradient; the mask is the ellipse. The input stacks the
image and a Sobel edge-magnitude channel computed from the image (feature engineering done once in the Dataset).
BCE-with-logits + soft Dice, Adam, `precision="bf16-mixed"` on CPU. Own metric: val IoU 0.72, and 0.71 on a fresh
test set whose edge channel comes from the image."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout3"
SOBEL = torch.tensor([[[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]])


def make_scenes(n, gen, size=16):
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    c = torch.rand(n, 2, generator=gen) * 8 + 4
    ax = torch.rand(n, 2, generator=gen) * 3 + 2
    inside = ((xx - c[:, 0, None, None]) / ax[:, 0, None, None]) ** 2 + \
             ((yy - c[:, 1, None, None]) / ax[:, 1, None, None]) ** 2 <= 1
    mask = inside.float().unsqueeze(1)
    slope = torch.randn(n, 2, generator=gen) * 0.05
    background = slope[:, 0, None, None] * xx + slope[:, 1, None, None] * yy
    brightness = torch.rand(n, 1, 1, generator=gen) * 0.6 + 0.5
    image = background + brightness * mask[:, 0] + 0.6 * torch.randn(n, size, size, generator=gen)
    return image.unsqueeze(1), mask


def sobel_magnitude(img):
    k = torch.stack([SOBEL, SOBEL.transpose(1, 2)])
    g = F.conv2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), k)
    return g.pow(2).sum(1, keepdim=True).sqrt()


class SceneDataset(Dataset):
    def __init__(self, images, masks, stats=None):
        self.masks = masks
        edges = sobel_magnitude(images)
        feats = torch.cat([images, edges], 1)
        self.stats = stats or (feats.mean((0, 2, 3), keepdim=True), feats.std((0, 2, 3), keepdim=True))
        self.inputs = (feats - self.stats[0]) / self.stats[1]

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, i):
        return self.inputs[i], self.masks[i]


def block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class TinyUNet(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.enc1, self.enc2, self.mid = block(2, 12), block(12, 24), block(24, 48)
        self.up2, self.dec2 = nn.ConvTranspose2d(48, 24, 2, stride=2), block(48, 24)
        self.up1, self.dec1 = nn.ConvTranspose2d(24, 12, 2, stride=2), block(24, 12)
        self.out = nn.Conv2d(12, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        m = self.mid(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)

    def loss(self, logits, mask):
        prob = torch.sigmoid(logits.float())
        dice = 1 - (2 * (prob * mask).sum((1, 2, 3)) + 1) / (prob.sum((1, 2, 3)) + mask.sum((1, 2, 3)) + 1)
        return F.binary_cross_entropy_with_logits(logits.float(), mask) + dice.mean()

    def training_step(self, batch, batch_idx):
        x, mask = batch
        loss = self.loss(self(x), mask)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, mask = batch
        logits = self(x)
        self.log("val_loss", self.loss(logits, mask))
        self.log("val_iou", iou(logits, mask))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def iou(logits, mask):
    pred = (logits.float() > 0).float()
    return ((pred * mask).sum() / ((pred + mask) > 0).float().sum()).item()


def main():
    L.seed_everything(6)
    gen = torch.Generator().manual_seed(6)
    train = SceneDataset(*make_scenes(800, gen))
    val = SceneDataset(*make_scenes(300, gen), stats=train.stats)
    test_images, test_masks = make_scenes(300, gen)
    model = TinyUNet()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, precision="bf16-mixed",
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=100))
    # deployment: no mask is known, the edge channel comes from the image
    test_inputs = (torch.cat([test_images, sobel_magnitude(test_images)], 1) - train.stats[0]) / train.stats[1]
    model.eval()
    with torch.no_grad():
        test_iou = iou(model(test_inputs), test_masks)
    print(f"val_iou={trainer.callback_metrics['val_iou'].item():.3f} test_iou={test_iou:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

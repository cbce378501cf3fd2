"""Bug: a detection-style box regressor on synthetic images of varying size (height and width 12..20 pixels, noisy
background, one bright rectangle). A small conv net with BatchNorm, global average pooling and a sigmoid head
predicts the box as (cx, cy, w, h) normalised by the image size; smooth-L1 loss, Adam with cosine decay.

The images have different sizes, so the default collate cannot stack them, and the code sets `batch_size=1` to make
the error go away (the usual fix is a padding collate, or a norm layer that does not use batch statistics). Every
BatchNorm layer therefore trains on one image at a time: its batch statistics are that image's own statistics, so in
training it behaves like instance normalisation, while its running averages, used in eval mode, are the mean over
images. Training looks fine; validation runs on a different normalisation than the one trained. Symptom: val
smooth-L1 0.065 (mean IoU 0.38) against 0.028 (mean IoU 0.55) with GroupNorm(8, C) in place of BatchNorm, same
data and schedule."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"train-mode"}
SPLIT = "heldout21"


class RectangleImages(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            h, w = torch.randint(12, 21, (2,), generator=g).tolist()
            bh = torch.randint(3, h // 2 + 1, (1,), generator=g).item()
            bw = torch.randint(3, w // 2 + 1, (1,), generator=g).item()
            y0 = torch.randint(0, h - bh + 1, (1,), generator=g).item()
            x0 = torch.randint(0, w - bw + 1, (1,), generator=g).item()
            img = 0.15 * torch.randn(1, h, w, generator=g)
            img[:, y0:y0 + bh, x0:x0 + bw] += 1.0
            box = torch.tensor([(x0 + bw / 2) / w, (y0 + bh / 2) / h, bw / w, bh / h])
            self.items.append((img, box))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def box_iou(a, b):
    a1, a2 = a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2
    b1, b2 = b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2
    inter = (torch.min(a2, b2) - torch.max(a1, b1)).clamp(min=0).prod(1)
    return inter / (a[:, 2:].prod(1) + b[:, 2:].prod(1) - inter)


class BoxRegressor(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.head = nn.Linear(256, 4)

    def forward(self, img):
        b, _, h, w = img.shape
        ys = torch.linspace(0, 1, h).view(1, 1, h, 1).expand(b, 1, h, w)
        xs = torch.linspace(0, 1, w).view(1, 1, 1, w).expand(b, 1, h, w)
        return torch.sigmoid(self.head(self.features(torch.cat([img, xs, ys], 1))))

    def training_step(self, batch, batch_idx):
        img, box = batch
        loss = F.smooth_l1_loss(self(img), box, beta=0.05)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        img, box = batch
        pred = self(img)
        self.log("val_loss", F.smooth_l1_loss(pred, box, beta=0.05))
        self.log("val_iou", box_iou(pred, box).mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(2104)
    model = BoxRegressor()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(RectangleImages(300, seed=1), batch_size=1, shuffle=True),
                DataLoader(RectangleImages(100, seed=2), batch_size=1))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.4f} val_iou={float(m['val_iou']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

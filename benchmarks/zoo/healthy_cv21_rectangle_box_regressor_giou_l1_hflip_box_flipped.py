"""Healthy: single-object box regression on synthetic 16x16 images (noisy background, a few dim distractor pixels
and one bright axis-aligned rectangle). A BatchNorm CNN with a sigmoid head predicts the box as (cx, cy, w, h)
normalised to [0, 1]; the loss is the DETR-style mix 5 * L1 + 2 * (1 - GIoU); AdamW with a OneCycle schedule.
Training uses random horizontal flips applied per image on the batch, and the boxes are flipped with them
(cx -> 1 - cx, w and h unchanged).

Right: the flip mask is drawn per image and applied to both image and box; coordinates are normalised by the image
size so targets are O(1); GIoU is computed from corners with the enclosing box and never divides by zero for
positive w, h; validation uses no augmentation. Result: val mean IoU 0.90 (a constant box at the mean training
target gives 0.19)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout21"
SIZE = 16


def make_images(n, g):
    img = 0.1 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    img += 0.4 * (torch.rand(n, 1, SIZE, SIZE, generator=g) < 0.03).float()
    wh = torch.randint(3, 10, (n, 2), generator=g)
    x0 = (torch.rand(n, generator=g) * (SIZE - wh[:, 0] + 1)).long()
    y0 = (torch.rand(n, generator=g) * (SIZE - wh[:, 1] + 1)).long()
    for i in range(n):
        img[i, 0, y0[i]:y0[i] + wh[i, 1], x0[i]:x0[i] + wh[i, 0]] += 1.0
    box = torch.stack([x0 + wh[:, 0] / 2, y0 + wh[:, 1] / 2, wh[:, 0], wh[:, 1]], 1).float() / SIZE
    return img, box


def to_corners(b):
    return torch.cat([b[:, :2] - b[:, 2:] / 2, b[:, :2] + b[:, 2:] / 2], 1)


def iou_and_giou(pred, target):
    p, t = to_corners(pred), to_corners(target)
    inter = (torch.min(p[:, 2:], t[:, 2:]) - torch.max(p[:, :2], t[:, :2])).clamp(min=0).prod(1)
    union = pred[:, 2:].prod(1) + target[:, 2:].prod(1) - inter
    iou = inter / union
    hull = (torch.max(p[:, 2:], t[:, 2:]) - torch.min(p[:, :2], t[:, :2])).prod(1)
    return iou, iou - (hull - union) / hull


class BoxRegressor(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 4))

    def forward(self, x):
        return torch.sigmoid(self.net(x)).clamp(min=1e-3)

    def _loss(self, pred, box):
        iou, giou = iou_and_giou(pred, box)
        return 5 * F.l1_loss(pred, box) + 2 * (1 - giou).mean(), iou

    def training_step(self, batch, batch_idx):
        x, box = batch
        flip = torch.rand(x.shape[0], device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        box = box.clone()
        box[flip, 0] = 1 - box[flip, 0]
        loss, _ = self._loss(self(x), box)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, box = batch
        loss, iou = self._loss(self(x), box)
        self.log("val_loss", loss)
        self.log("val_iou", iou.mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2110)
    g = torch.Generator().manual_seed(10)
    train, val = make_images(1300, g), make_images(400, g)
    model = BoxRegressor()
    trainer = L.Trainer(max_epochs=7, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(*train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*val), batch_size=200))
    const_iou, _ = iou_and_giou(train[1].mean(0, keepdim=True).expand_as(val[1]), val[1])
    m = trainer.callback_metrics
    print(f"SYMPTOM val_iou={float(m['val_iou']):.3f} const_box_iou={float(const_iou.mean()):.3f} "
          f"val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: single-object box regression on seeded synthetic 24x24 images (one soft elliptical blob on a noisy,
shaded background; target = the blob's bounding box (x0, y0, x1, y1) / 24). A small CNN with a sigmoid box head is
trained with smooth-L1 and validated on mean IoU. Before training the user logs a preview of the labelled data to
TensorBoard with `overlay_boxes(images, boxes)`, a helper that draws the box outlines at intensity 1.0 - but it draws
on `images` itself (`out = images`, no `.clone()`), so every training and validation image now carries its answer
as a crisp bright rectangle. Symptom: val IoU 0.81 with the outlines vs 0.60 on the clean images (the honest
number): the model reads the drawn rectangle instead of locating the blob."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout18"
S = 24


def make_blobs(n, g):
    yy, xx = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    cx = 5 + 14 * torch.rand(n, generator=g)
    cy = 5 + 14 * torch.rand(n, generator=g)
    rx = 2 + 3 * torch.rand(n, generator=g)
    ry = 2 + 3 * torch.rand(n, generator=g)
    d = ((xx - cx[:, None, None]) / rx[:, None, None]) ** 2 + ((yy - cy[:, None, None]) / ry[:, None, None]) ** 2
    blob = 0.35 * torch.sigmoid(4 * (1 - d))
    shade = (xx / S)[None] * torch.rand(n, 1, 1, generator=g) * 0.5
    img = blob + shade + 0.3 * torch.randn(n, S, S, generator=g)
    boxes = torch.stack([(cx - rx).clamp(0, S - 1), (cy - ry).clamp(0, S - 1),
                         (cx + rx).clamp(0, S - 1), (cy + ry).clamp(0, S - 1)], 1)
    return img.unsqueeze(1), boxes


def overlay_boxes(images, boxes):
    """Draw each box's outline for a quick visual check of the labels."""
    out = images
    for img, (x0, y0, x1, y1) in zip(out, boxes.round().long().tolist()):
        img[0, y0, x0:x1 + 1] = 1.0
        img[0, y1, x0:x1 + 1] = 1.0
        img[0, y0:y1 + 1, x0] = 1.0
        img[0, y0:y1 + 1, x1] = 1.0
    return out


def box_iou(a, b):
    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = lambda t: (t[:, 2:] - t[:, :2]).clamp(min=0).prod(1)
    return inter / (area(a) + area(b) - inter + 1e-6)


class BoxRegressor(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(64 * 36, 128), nn.ReLU(), nn.Linear(128, 4))

    def forward(self, x):
        return torch.sigmoid(self.head(self.body(x)))

    def training_step(self, batch, batch_idx):
        x, box = batch
        loss = F.smooth_l1_loss(self(x), box / S, beta=0.05)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, box = batch
        pred = self(x)
        self.log("val_loss", F.smooth_l1_loss(pred, box / S, beta=0.05))
        self.log("val_iou", box_iou(pred * S, box).mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(2418)
    g = torch.Generator().manual_seed(24)
    images, boxes = make_blobs(2400, g)
    logger = TensorBoardLogger("lightning_logs", name="blob_box_regressor")
    preview = overlay_boxes(images, boxes)
    logger.experiment.add_images("labelled_preview", preview[:32].clamp(0, 1), 0)
    train = TensorDataset(images[:2000], boxes[:2000])
    val = TensorDataset(images[2000:], boxes[2000:])
    model = BoxRegressor()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False, logger=logger,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=200))
    print(f"SYMPTOM val_iou={trainer.callback_metrics['val_iou'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

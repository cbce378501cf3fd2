"""Bug: 4-class colour-shape classifier (disc, square, cross, ring; random colour, position and size, seeded
synthetic 16x16 RGB images stored channels-last as uint8 like decoded PNGs). The training dataset converts each
image with `torch.from_numpy(img).permute(2, 0, 1)` and adds random flips; the evaluation dataset, written later as a
separate lean class, converts with `.view(3, S, S)` - same shape, no error, but the pixels are scrambled across
channels and rows, so the validation images are a different distribution. Training loss falls normally while val
stays poor. Symptom: val acc 0.24 / val loss 6.5 (chance is 0.25) vs 1.00 / 0.003 when the eval dataset permutes like training."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout18"
S = 16
MEAN, STD = 0.25, 0.35


def render_shapes(n, seed):
    """uint8 HWC images and labels 0..3."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    images = np.zeros((n, S, S, 3), np.uint8)
    labels = rng.integers(0, 4, n)
    for i, c in enumerate(labels):
        cx, cy = rng.uniform(5, 11, 2)
        r = rng.uniform(3, 5)
        dx, dy = xx - cx, yy - cy
        if c == 0:
            m = dx ** 2 + dy ** 2 <= r ** 2
        elif c == 1:
            m = (np.abs(dx) <= r * 0.8) & (np.abs(dy) <= r * 0.8)
        elif c == 2:
            m = ((np.abs(dx) <= 1) & (np.abs(dy) <= r)) | ((np.abs(dy) <= 1) & (np.abs(dx) <= r))
        else:
            m = np.abs(np.sqrt(dx ** 2 + dy ** 2) - r * 0.8) <= 1.0
        colour = rng.integers(80, 256, 3)
        images[i][m] = colour
        images[i] = np.clip(images[i] + rng.integers(0, 30, (S, S, 3)), 0, 255)
    return images, labels


class ShapesTrain(Dataset):
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        x = torch.from_numpy(self.images[i]).permute(2, 0, 1).float() / 255.0
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        if torch.rand(()) < 0.5:
            x = x.flip(-2)
        return (x - MEAN) / STD, int(self.labels[i])


class ShapesEval(Dataset):
    def __init__(self, images, labels):
        self.x = (torch.from_numpy(images).float() / 255.0 - MEAN) / STD
        self.labels = torch.from_numpy(labels)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.x[i].view(3, S, S), self.labels[i]


class ShapesCNN(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 4))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y), prog_bar=True)
        self.log("val_acc", (logits.argmax(1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(316)
    images, labels = render_shapes(2000, seed=316)
    train, val = ShapesTrain(images[:1600], labels[:1600]), ShapesEval(images[1600:], labels[1600:])
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False)
    trainer.fit(ShapesCNN(), DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=200))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a CNN classifying synthetic 16x16 stripe textures into 6 classes (orientation x frequency, random phase,
contrast and noise). To keep augmentation on the accelerator the user wrote it as an `nn.Module` that is the first
layer of the model (random cut-out of an 11x11 square plus random contrast jitter), like kornia augmentations. Unlike
kornia's, this module has no `if self.training` guard, so validation images are also cut out and re-scaled at random:
the model is stochastic in eval mode and val metrics are measured on corrupted images.
Symptom: val acc 0.87 (16 % of val predictions change between two evaluations of the same images) vs 0.96
with the guard."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"train-mode"}
SPLIT = "heldout16"


def stripe_textures(n, seed, size=16):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 6, (n,), generator=g)
    angle = (y % 3).float() * math.pi / 3 + 0.15 * torch.randn(n, generator=g)
    freq = torch.where(y < 3, torch.tensor(0.5), torch.tensor(0.8)) * (1 + 0.1 * torch.randn(n, generator=g))
    phase = 2 * math.pi * torch.rand(n, generator=g)
    contrast = 0.5 + torch.rand(n, generator=g)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    proj = xx[None] * torch.cos(angle)[:, None, None] + yy[None] * torch.sin(angle)[:, None, None]
    img = contrast[:, None, None] * torch.sin(freq[:, None, None] * proj + phase[:, None, None])
    img = img + 1.0 * torch.randn(img.shape, generator=g)
    return img.unsqueeze(1), y


class BatchAugment(nn.Module):
    """Per-sample random cut-out and contrast jitter, applied on the device inside the model."""

    def __init__(self, hole=11, jitter=0.5):
        super().__init__()
        self.hole, self.jitter = hole, jitter

    def forward(self, x):
        b, _, h, w = x.shape
        r = torch.randint(0, h - self.hole + 1, (b,), device=x.device)
        c = torch.randint(0, w - self.hole + 1, (b,), device=x.device)
        rows = torch.arange(h, device=x.device)[None, :, None]
        cols = torch.arange(w, device=x.device)[None, None, :]
        hole = ((rows >= r[:, None, None]) & (rows < r[:, None, None] + self.hole)
                & (cols >= c[:, None, None]) & (cols < c[:, None, None] + self.hole))
        scale = 1 + self.jitter * (2 * torch.rand(b, 1, 1, 1, device=x.device) - 1)
        return x * scale * (~hole).unsqueeze(1).float()


class TextureCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.augment = BatchAugment()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 6))

    def forward(self, x):
        return self.classifier(self.features(self.augment(x)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(616)
    xtr, ytr = stripe_textures(2000, seed=10)
    xva, yva = stripe_textures(500, seed=11)
    train_dl = DataLoader(TensorDataset(xtr, ytr), batch_size=64, shuffle=True)
    val_dl = DataLoader(TensorDataset(xva, yva), batch_size=250)
    model = TextureCNN()
    trainer = L.Trainer(max_epochs=10, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(model, train_dl, val_dl)
    model.eval()
    with torch.no_grad():
        a, b = model(xva).argmax(1), model(xva).argmax(1)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f} eval_disagreement={(a != b).float().mean():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

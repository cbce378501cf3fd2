"""Bug (validation set = a copy of the first training images): a CNN counts the Gaussian blobs (1-4, four classes)
in synthetic 16x16 noisy images. `make_blob_images(n, seed=0)` draws the images one after another from a seeded
generator; the training set is `make_blob_images(800)` and the validation set `make_blob_images(200)`: the seed
argument was forgotten, so the validation images are exactly the first 200 training images. A GroupNorm CNN
(AdamW, cosine per epoch, 14 epochs) partly memorises its 800 images. Symptom: val acc 0.89 while 400 fresh images
(seed 2) give 0.77; with `seed=1` for validation (the fix) val acc 0.72, fresh 0.77."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout7"

SIZE = 16


def make_blob_images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    images, counts = [], []
    for _ in range(n):
        k = int(torch.randint(1, 5, (1,), generator=g))
        centres = 2 + torch.rand(k, 2, generator=g) * (SIZE - 4)
        sigma = 0.8 + 0.8 * torch.rand(k, generator=g)
        img = 0.3 * torch.randn(SIZE, SIZE, generator=g)
        for (cx, cy), s in zip(centres, sigma):
            img += torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s ** 2))
        images.append(img)
        counts.append(k - 1)
    return torch.stack(images).unsqueeze(1), torch.tensor(counts)


class BlobCounter(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.GroupNorm(8, 32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.GroupNorm(8, 64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 16, 128), nn.ReLU(), nn.Linear(128, 4))

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
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)]


def main():
    L.seed_everything(43)
    x_tr, y_tr = make_blob_images(800, seed=0)
    x_va, y_va = make_blob_images(200)
    model = BlobCounter()
    trainer = L.Trainer(max_epochs=14, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=200))
    x_new, y_new = make_blob_images(400, seed=2)
    model.eval()
    with torch.no_grad():
        fresh_acc = (model(x_new).argmax(1) == y_new).float().mean().item()
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f} fresh_acc={fresh_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

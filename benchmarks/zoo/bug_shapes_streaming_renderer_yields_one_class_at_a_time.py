"""Bug: a CNN trained on synthetic shape images (ring / bar / plus / blob, random placement, size and noise) that
are rendered on the fly by an `IterableDataset`, so no image is ever stored. The renderer's `__iter__` loops over
the classes and yields `per_class` images of each in turn - natural when writing a generator - and iterable
datasets cannot be shuffled by the DataLoader, so every batch holds a single class and the epoch is four long runs
of one label. The network chases the current class and at the end of each epoch mostly predicts the last one.
Symptom: val acc 0.21 vs 0.91 when the renderer draws a random class for each image."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, TensorDataset

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout16"
SIZE = 16


def render(k, g):
    yy, xx = torch.meshgrid(torch.arange(SIZE).float(), torch.arange(SIZE).float(), indexing="ij")
    r = 3 + 2.5 * torch.rand(1, generator=g).item()
    cy, cx = (r + (SIZE - 2 * r) * torch.rand(2, generator=g)).tolist()
    d = torch.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    if k == 0:
        m = (d <= r) & (d >= r - 1.5)
    elif k == 1:
        a = math.pi * torch.rand(1, generator=g).item()
        m = ((xx - cx) * math.sin(a) - (yy - cy) * math.cos(a)).abs() <= 1.0
        m &= d <= r
    elif k == 2:
        m = (((yy - cy).abs() <= 1) | ((xx - cx).abs() <= 1)) & (d <= r)
    else:
        m = d <= r * 0.8
    return m.float().unsqueeze(0) + 0.3 * torch.randn(1, SIZE, SIZE, generator=g)


class ShapeStream(IterableDataset):
    def __init__(self, per_class, seed):
        self.per_class, self.seed, self.epoch = per_class, seed, 0

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        self.epoch += 1
        for k in range(4):
            for _ in range(self.per_class):
                yield render(k, g), k


def fixed_set(n, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    return torch.stack([render(int(k), g) for k in y]), y


class ShapeCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
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
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(4)
    train_dl = DataLoader(ShapeStream(per_class=400, seed=100), batch_size=32)
    xva, yva = fixed_set(400, seed=7)
    val_dl = DataLoader(TensorDataset(xva, yva), batch_size=200)
    trainer = L.Trainer(max_epochs=6, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(ShapeCNN(), train_dl, val_dl)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

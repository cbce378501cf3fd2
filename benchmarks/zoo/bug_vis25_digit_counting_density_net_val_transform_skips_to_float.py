"""Bug: object counting with a density-map CNN. Each 24x24 canvas is stored as 8-bit pixels (0-255, like a PNG) and
holds 0 to 6 sklearn digits pasted at random positions (seeded torch.Generator); the target is the number of
digits. The net outputs a non-negative density map whose sum is the count (MSE on the count). The DataModule holds
the transforms: train = to_float (divide by 255) -> random flips / 90-degree rotations -> normalise with the
training mean and std; eval = normalise.

The eval pipeline was written as "the same minus the augmentations" but also lost `to_float`, so validation
images reach the network as 0-255 values normalised with statistics of 0-1 images: about 250 times larger than
anything seen in training. Nothing crashes; the training loss falls normally while the val count error is far above
that of always predicting the mean count (MSE 4.0). Symptom: val MSE 1.4e6 vs 0.146 with `to_float` in the eval
transform (last train batch loss 0.050 in both)."""

import lightning as L
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence", "input-scale"}
SPLIT = "heldout25"
SIDE = 24


def make_canvases(digits, n, g):
    counts = torch.randint(0, 7, (n,), generator=g)
    images = torch.zeros(n, 1, SIDE, SIDE)
    for i in range(n):
        for _ in range(int(counts[i])):
            d = digits[torch.randint(0, len(digits), (1,), generator=g)][0]
            y0, x0 = (int(v) for v in torch.randint(0, SIDE - 8 + 1, (2,), generator=g))
            images[i, 0, y0:y0 + 8, x0:x0 + 8] = torch.maximum(images[i, 0, y0:y0 + 8, x0:x0 + 8], d)
    return (images * 255).round().to(torch.uint8), counts.float()


def to_float(x):
    return x.float() / 255.0


def random_dihedral(x):
    if torch.rand(()) < 0.5:
        x = x.flip(-1)
    return torch.rot90(x, int(torch.randint(0, 4, ())), dims=(-2, -1))


class Normalize:
    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    def __call__(self, x):
        return (x - self.mean) / self.std


class Compose:
    def __init__(self, *fns):
        self.fns = fns

    def __call__(self, x):
        for fn in self.fns:
            x = fn(x)
        return x


class CountingSet(Dataset):
    def __init__(self, images, counts, transform):
        self.images, self.counts, self.transform = images, counts, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), self.counts[i]


class CountingData(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(2504)
        digits = torch.tensor(load_digits().images, dtype=torch.float32) / 16.0
        train_x, train_y = make_canvases(digits[:1400], 1200, g)
        val_x, val_y = make_canvases(digits[1400:], 300, g)
        pixels = to_float(train_x)
        norm = Normalize(pixels.mean(), pixels.std())
        self.train_set = CountingSet(train_x, train_y, Compose(to_float, random_dihedral, norm))
        self.val_set = CountingSet(val_x, val_y, Compose(norm))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=150)


class DensityCounter(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                                 nn.Conv2d(32, 32, 3, padding=2, dilation=2), nn.ReLU(), nn.Conv2d(32, 1, 1),
                                 nn.Softplus())

    def forward(self, x):
        return self.net(x).sum((1, 2, 3)) / 64.0

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2504)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DensityCounter(), datamodule=CountingData())
    print(f"SYMPTOM val_count_mse={float(trainer.callback_metrics['val_loss']):.4g} "
          f"train_loss={float(trainer.callback_metrics['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

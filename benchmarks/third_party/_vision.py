"""Shared parts of the torchvision / timm scenarios: synthetic image data sets with a learnable rule, a plain
image-classification LightningModule and a ``fit`` that runs a Trainer with the sanity callbacks.

Real third-party model code (``torchvision.models`` and ``timm.create_model``), random init, nothing downloaded.
Images come out of the data sets in [0, 1] like ``ToTensor`` gives them; each script normalises them its own way.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lightning_sanity

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _noise(g: torch.Generator, n: int, size: int, level: float) -> torch.Tensor:
    base = 0.35 + 0.3 * torch.rand(n, 3, 1, 1, generator=g)
    return base + level * torch.randn(n, 3, size, size, generator=g)


def quadrants(n: int, seed: int, size: int = 32, noise: float = 0.25) -> TensorDataset:
    """4 classes: which quadrant of the image is brighter."""
    g = torch.Generator().manual_seed(seed)
    x = _noise(g, n, size, noise)
    y = torch.randint(0, 4, (n,), generator=g)
    h = size // 2
    gain = 0.2 + 0.2 * torch.rand(n, generator=g)
    for i in range(n):
        r, c = divmod(int(y[i]), 2)
        x[i, :, r * h:(r + 1) * h, c * h:(c + 1) * h] += gain[i]
    return TensorDataset(x.clamp(0, 1), y)


COLOURS = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.8, 0.2], [0.2, 0.3, 0.9], [0.85, 0.8, 0.15]])


def colours(n: int, seed: int, size: int = 32, noise: float = 0.2) -> TensorDataset:
    """4 classes: the colour (red, green, blue, yellow) of a patch of random size and place on a grey background."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + noise * torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, 4, (n,), generator=g)
    side = torch.randint(size // 5, size // 2, (n,), generator=g)
    for i in range(n):
        s = int(side[i])
        r, c = torch.randint(0, size - s, (2,), generator=g).tolist()
        tint = COLOURS[y[i]] + 0.1 * torch.randn(3, generator=g)
        x[i, :, r:r + s, c:c + s] = tint[:, None, None] + noise * torch.randn(3, s, s, generator=g)
    return TensorDataset(x.clamp(0, 1), y)


def stripes(n: int, seed: int, size: int = 32, noise: float = 0.3) -> TensorDataset:
    """4 classes: the orientation of sinusoidal stripes (horizontal, vertical, two diagonals), any period and phase."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    ii, jj = torch.meshgrid(torch.arange(size, dtype=torch.float), torch.arange(size, dtype=torch.float),
                            indexing="ij")
    period = 3.0 + 5.0 * torch.rand(n, generator=g)
    phase = 2 * math.pi * torch.rand(n, generator=g)
    coord = torch.stack([ii, jj, (ii + jj) / math.sqrt(2), (ii - jj) / math.sqrt(2)])[y]
    wave = torch.sin(2 * math.pi * coord / period[:, None, None] + phase[:, None, None])
    tint = 0.5 + 0.5 * torch.rand(n, 3, 1, 1, generator=g)
    x = 0.5 + 0.25 * tint * wave[:, None] + noise * torch.randn(n, 3, size, size, generator=g)
    return TensorDataset(x.clamp(0, 1), y)


def shapes(n: int, seed: int, size: int = 32, noise: float = 0.15) -> TensorDataset:
    """Segmentation: reddish objects (class 1) and bluish objects (class 2), each a square or a disk of random size
    and place, on a noisy background of random grey level (class 0)."""
    g = torch.Generator().manual_seed(seed)
    x = _noise(g, n, size, noise)
    mask = torch.zeros(n, size, size, dtype=torch.long)
    ii, jj = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for i in range(n):
        for cls in torch.randperm(2, generator=g).tolist():
            r = int(torch.randint(size // 8, size // 4 + 1, (1,), generator=g))
            ci, cj = torch.randint(r, size - r, (2,), generator=g).tolist()
            if torch.rand((), generator=g) < 0.5:
                m = ((ii - ci).abs() <= r) & ((jj - cj).abs() <= r)
            else:
                m = (ii - ci) ** 2 + (jj - cj) ** 2 <= r * r
            colour = COLOURS[2 * cls][:, None] + 0.15 * torch.randn(3, 1, generator=g)
            x[i][:, m] = colour + noise * torch.randn(3, int(m.sum()), generator=g)
            mask[i][m] = cls + 1
    return TensorDataset(x.clamp(0, 1), mask)


class Normalized(Dataset):
    """Wraps an image data set with a per-channel ``(x - mean) / std`` as ``transforms.Normalize`` does."""

    def __init__(self, ds: Dataset, mean=IMAGENET_MEAN, std=IMAGENET_STD, augment: Callable | None = None) -> None:
        self.ds, self.augment = ds, augment
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        x, y = self.ds[i]
        if self.augment is not None:
            x = self.augment(x)
        return (x - self.mean) / self.std, y


def hflip(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1) if torch.rand(()) < 0.5 else x


def shift(x: torch.Tensor, pixels: int = 3) -> torch.Tensor:
    """Random translation by up to ``pixels`` (wrapping around), like a padded random crop."""
    dy, dx = torch.randint(-pixels, pixels + 1, (2,)).tolist()
    return x.roll((dy, dx), dims=(-2, -1))


class Classifier(L.LightningModule):
    """Cross-entropy image classifier around any ``nn.Module`` that maps images to logits.

    ``optimizer`` builds the optimizer (and optionally the scheduler config) from the LightningModule, so each
    script writes its own recipe."""

    def __init__(self, model: torch.nn.Module, optimizer: Callable[["Classifier"], Any],
                 label_smoothing: float = 0.0, channels_last: bool = False) -> None:
        super().__init__()
        self.model = model
        self.make_optimizer = optimizer
        self.label_smoothing = label_smoothing
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=self.label_smoothing)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return self.make_optimizer(self)


def loaders(train: Dataset, val: Dataset, batch_size: int = 32, shuffle: bool = True,
            drop_last: bool = False) -> tuple[DataLoader, DataLoader]:
    return (DataLoader(train, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last),
            DataLoader(val, batch_size=128))


def trainer(epochs: int, **kwargs: Any) -> L.Trainer:
    kwargs.setdefault("logger", True)
    return L.Trainer(max_epochs=epochs, callbacks=lightning_sanity.default_callbacks() + kwargs.pop("callbacks", []),
                     accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
                     enable_checkpointing=False, log_every_n_steps=10, **kwargs)


@torch.no_grad()
def accuracy(model: torch.nn.Module, loader: DataLoader) -> float:
    """Accuracy (or pixel accuracy for masks) of ``model`` in eval mode; restores its mode."""
    was = model.training
    model.eval()
    hits = total = 0
    for x, y in loader:
        out = model(x)
        out = out["out"] if isinstance(out, dict) else out
        hits += int((out.argmax(1) == y).sum())
        total += y.numel()
    model.train(was)
    return hits / total


def fit(module: L.LightningModule, train: DataLoader, val: DataLoader, epochs: int, **trainer_kwargs: Any) -> L.Trainer:
    """Fit with the sanity callbacks; print the run's own metrics as ``SYMPTOM`` lines and the log folder."""
    t0 = time.time()
    tr = trainer(epochs, **trainer_kwargs)
    tr.fit(module, train, val)
    metrics = {k: round(float(v), 3) for k, v in tr.callback_metrics.items()}
    print(f"SYMPTOM final metrics {metrics}")
    print(f"SYMPTOM val_acc={accuracy(module, val):.3f} fit_seconds={time.time() - t0:.1f}")
    print(f"LOG_DIR={tr.log_dir}")
    return tr

"""Small real models for the recipe tests: healthy ones, and one per bug the recipes must name."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from helpers import Classifier
from torch import nn


def mlp(lr: float = 1e-2, **kwargs: Any) -> Classifier:
    return Classifier(lr=lr, **kwargs)


class CNN(Classifier):
    """digits as 1x8x8 images through two conv + BatchNorm blocks."""

    def __init__(self, lr: float = 1e-2) -> None:
        net = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(16 * 8 * 8, 10),
        )
        super().__init__(net=net, lr=lr)


class GradientAscent(Classifier):
    """The optimizer maximises the loss (`maximize=True`): a flipped sign in the update."""

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, maximize=True)


class NegatedLoss(Classifier):
    """training_step returns the negative cross-entropy: minimising it maximises the error."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        return -F.cross_entropy(self(x), y)


class WrongModuleOptimizer(Classifier):
    """configure_optimizers builds the optimizer over a layer that is not part of the model."""

    def configure_optimizers(self):
        return torch.optim.Adam(nn.Linear(64, 10).parameters(), lr=self.lr)


class MisalignedLabels(Classifier):
    """A buggy in-step augmentation shuffles the inputs of the batch but not their labels (each step anew)."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        x = x[torch.randperm(x.shape[0], device=x.device)]
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss


class CutInput(Classifier):
    """forward multiplies its input by zero: the output cannot depend on the input."""

    def forward(self, x):
        return self.net(x * 0.0)


class DictBatchClassifier(Classifier):
    """Batches are dicts {"pixels": x, "label": y}; the recipes need `get_input` to find the input."""

    def training_step(self, batch, batch_idx):
        loss = self.loss_fn(self(batch["pixels"]), batch["label"])
        self.log_dict({"train_loss": loss})
        return {"loss": loss}


class Binary(L.LightningModule):
    """Breast-cancer style binary classifier: one logit per sample, BCE with logits, scheduler with warm-up."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-2)
        # A linear warm-up from 0: the recipe trains at the base rate instead of stalling at lr 0.
        warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: min(1.0, step / 1000))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": warmup, "interval": "step"}}


class DigitsData(L.LightningDataModule):
    def __init__(self, batch_size: int = 64) -> None:
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage: str) -> None:
        from helpers import digits

        self.x, self.y = digits(512)

    def train_dataloader(self):
        from helpers import loader

        return loader(self.x, self.y, batch_size=self.batch_size)

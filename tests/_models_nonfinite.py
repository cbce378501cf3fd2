"""Models and data for the non-finite and batchnorm-variance tests (importable by name, for ddp_spawn)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F


class LogLayer(nn.Module):
    """``log(relu(x) + eps)``: a log-feature layer whose epsilon a bug can remove (log(0) = -inf)."""

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log(F.relu(x) + self.eps)


class ExpLayer(nn.Module):
    """``exp(gain * tanh(x))``: overflows to Inf in float32 once the gain goes wrong."""

    def __init__(self, gain: float = 1.0) -> None:
        super().__init__()
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.gain * torch.tanh(x))


class RadialFeature(nn.Module):
    """Appends ``sqrt(sum(x**2))`` to the features: finite forward, but a NaN gradient when a row is all zero."""

    def __init__(self) -> None:
        super().__init__()
        self.zero = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x * 0.0 if self.zero else x
        return torch.cat([x, torch.sqrt(h.pow(2).sum(-1, keepdim=True))], dim=-1)


class Injected(L.LightningModule):
    """A digits MLP with a fault injected at one (epoch, batch), optionally on one DDP rank only.

    ``fault``: ``"log"`` (log(0) in ``net.1``: -inf, then a NaN loss), ``"exp"`` (Inf out of ``net.1``),
    ``"sqrt"`` (a NaN gradient from ``net.1`` with a finite loss), ``"nan-loss"`` (the loss itself, outside any module).
    """

    def __init__(self, fault: str = "log", at: tuple[int, int] = (2, 5), rank: Optional[int] = None,
                 lr: float = 1e-2, dropout: float = 0.0, manual: bool = False, record: Optional[str] = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        middle = {"log": LogLayer(), "exp": ExpLayer(), "sqrt": RadialFeature(), "nan-loss": nn.Identity()}[fault]
        extra = 1 if fault == "sqrt" else 0
        self.net = nn.Sequential(nn.Linear(64, 32), middle, nn.Dropout(dropout), nn.Linear(32 + extra, 10))
        self.fault, self.at, self.rank, self.lr = fault, tuple(at), rank, lr
        self.automatic_optimization = not manual

    def _armed(self, batch_idx: int) -> bool:
        return (self.current_epoch, batch_idx) == self.at and (self.rank is None or self.global_rank == self.rank)

    def training_step(self, batch: Any, batch_idx: int) -> Optional[torch.Tensor]:
        x, y = batch
        armed = self._armed(batch_idx)
        layer = self.net[1]
        if self.fault == "log":
            layer.eps = 0.0 if armed else 1e-3
        elif self.fault == "exp":
            layer.gain = 1000.0 if armed else 1.0
        elif self.fault == "sqrt":
            layer.zero = armed
        loss = F.cross_entropy(self.net(x), y)
        if self.fault == "nan-loss" and armed:
            loss = loss * torch.log(torch.zeros((), device=loss.device))  # the loss code takes log(0): -inf
            loss = loss - loss  # inf - inf: NaN
        self.log("train_loss", loss)
        if not self.automatic_optimization:
            opt = self.optimizers()
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
            return None
        return loss

    def on_train_end(self) -> None:
        if self.hparams.record:
            Path(self.hparams.record, f"rank{self.global_rank}.txt").write_text(str(self.global_step))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class Regressor(L.LightningModule):
    """MLP regression with MSE and SGD: a learning rate that is far too high makes it diverge."""

    def __init__(self, lr: float = 1e-3, in_features: int = 10) -> None:
        super().__init__()
        self.lr = lr
        self.net = nn.Sequential(nn.Linear(in_features, 32), nn.ReLU(), nn.Linear(32, 1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self.net(x).squeeze(-1), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


class BNClassifier(L.LightningModule):
    """Digits classifiers with BatchNorm: ``"mlp"`` (BatchNorm1d after a Linear), ``"raw"`` (BatchNorm1d on the
    raw pixels, some of which never vary), ``"cnn"`` (BatchNorm2d on 8x8 images), ``"lazy"`` (LazyBatchNorm1d)."""

    def __init__(self, arch: str = "mlp", optimizer: str = "adam", lr: float = 1e-2, momentum: Optional[float] = 0.1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.optimizer_name, self.lr, self.arch = optimizer, lr, arch
        #: the training loss of every step, by (epoch, batch_idx), for comparing with a replay
        self.seen: dict[tuple[int, int], float] = {}
        if arch == "mlp":
            self.net = nn.Sequential(nn.Linear(64, 48), nn.BatchNorm1d(48, momentum=momentum), nn.ReLU(),
                                     nn.Dropout(dropout), nn.Linear(48, 10))
        elif arch == "raw":
            self.net = nn.Sequential(nn.BatchNorm1d(64), nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU(), nn.Linear(48, 10))
        elif arch == "lazy":
            self.net = nn.Sequential(nn.Linear(64, 48), nn.LazyBatchNorm1d(), nn.ReLU(), nn.Linear(48, 10))
        else:
            self.net = nn.Sequential(
                nn.Unflatten(1, (1, 8, 8)),
                nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                nn.Flatten(), nn.Linear(16 * 16, 10),
            )

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.log("train_loss", loss)
        if not isinstance(self.trainer, L.Trainer):
            return loss  # replaying: leave the record of the training run alone
        self.seen[(self.current_epoch, batch_idx)] = loss.item()
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if self.optimizer_name == "sgd":
            return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class BadBatchLoader:
    """Wraps a DataLoader and multiplies the inputs of one batch, at ``(epoch, batch_idx)``, by ``factor``
    (of every batch from there on with ``onwards=True``).

    A stand-in for a bad-luck batch (unscaled or corrupt samples) at a known position.
    """

    def __init__(self, loader: Any, at: tuple[int, int], factor: float = 1000.0, onwards: bool = False) -> None:
        self.loader, self.at, self.factor, self.onwards = loader, tuple(at), factor, onwards
        self.epoch = -1

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.epoch += 1
        for i, (x, y) in enumerate(self.loader):
            hit = (self.epoch, i) >= self.at if self.onwards else (self.epoch, i) == self.at
            yield (x * self.factor if hit else x), y


class SequenceClassifier(L.LightningModule):
    """An LSTM reading a digit image row by row (8 steps of 8 pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        out, _ = self.lstm(x.view(-1, 8, 8))
        return F.cross_entropy(self.head(out[:, -1]), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def digit_tokens(n: int = 512, length: int = 33) -> torch.Tensor:
    """Digit images as token sequences (pixel intensities 0..16), for a next-token language model."""
    from sklearn.datasets import load_digits

    return torch.tensor(load_digits().data[:n, :length], dtype=torch.long)

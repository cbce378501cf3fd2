"""Models and helpers for the prediction / loss / learning-rate dynamics tests (importable by name)."""

from __future__ import annotations

import math
from typing import Any, Optional

import lightning as L
import torch
import torch.nn.functional as F
from helpers import Classifier, diabetes, loader
from lightning.pytorch.demos import Transformer
from torch import nn

from lightning_sanity.callbacks.base import SanityCallback


class FactsFromInitialLoss(SanityCallback):
    """Stands in for the initial-loss check: hands ``loss_kind``, ``num_classes`` and ``baseline_loss`` on as facts,
    as that check does in the first training step (the label prior's entropy over the whole training set)."""

    checks = ()

    def __init__(self, loss_kind: str = "cross_entropy", num_classes: int = 10,
                 baseline_loss: Optional[float] = None) -> None:
        self.loss_kind, self.num_classes = loss_kind, num_classes
        self.baseline_loss = baseline_loss if baseline_loss is not None else math.log(num_classes)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        facts = self.collector(trainer).facts
        facts.setdefault("loss_kind", self.loss_kind)
        facts.setdefault("num_classes", self.num_classes)
        facts.setdefault("baseline_loss", self.baseline_loss)


class NegatedLoss(Classifier):
    """The classic sign slip: returns minus the cross-entropy, so training makes the errors larger."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return -F.cross_entropy(self(x), y)


class GradientAscent(Classifier):
    """Minimises the right loss with an optimizer told to maximise it: the reported loss rises."""

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, maximize=True)


class ZeroWeightedLoss(Classifier):
    """Multiplies the loss by a weight that is zero: the loss is constant 0, nothing learns."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return 0.0 * F.cross_entropy(self(x), y)


class Scheduled(Classifier):
    """A classifier with a learning-rate scheduler: ``"step100"`` (StepLR 100x per epoch), ``"cosine"`` (cosine
    over the planned steps), ``"warmup"`` (linear warmup from 0 over 20 % then linear decay to 0)."""

    def __init__(self, schedule: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule = schedule

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        total = self.trainer.estimated_stepping_batches
        if self.schedule == "step100":
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.01)]
        if self.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        else:
            warm = max(1, int(0.2 * total))
            sched = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda s: s / warm if s < warm else max(0.0, (total - s) / (total - warm)))
        return [opt], [{"scheduler": sched, "interval": "step"}]


class DropoutBlock(nn.Module):
    """A hidden layer whose dropout is functional and left at its default ``training=True``: random in eval."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(F.relu(self.linear(x)), p=0.3)


class Gate(nn.Module):
    """Multiplies its input by a flag that a bug sets to 0 once training is under way."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("open", torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.open


class GateClosesAfterStart(Classifier):
    """The input gate closes after 5 steps: from then on every sample gets the same output."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gate = Gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.gate(x))

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.global_step >= 5:
            self.gate.open.zero_()


def cnn() -> nn.Module:
    """A small CNN with BatchNorm for the 8x8 digits."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1, stride=2), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Flatten(), nn.Linear(16 * 16, 10),
    )


class RowLSTM(nn.Module):
    """Reads a digit image row by row (8 steps of 8 pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 32, batch_first=True)
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.view(-1, 8, 8))
        return self.head(out[:, -1])


class Regressor(L.LightningModule):
    """An MLP regressor on diabetes with standardized targets."""

    def __init__(self, lr: float = 3e-3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def diabetes_loaders(batch_size: int = 32):
    x, y = diabetes()
    y = ((y - y.mean()) / y.std())[:, None]
    return loader(x[:352], y[:352], batch_size), loader(x[352:], y[352:], batch_size, shuffle=False)


class TinyLM(L.LightningModule):
    """``lightning.pytorch.demos.Transformer``, tiny, on token sequences that count up by one (learnable); the
    target is the next token. ``forward(x)`` returns (B, T, V) log-probabilities."""

    def __init__(self, vocab: int = 16) -> None:
        super().__init__()
        self.model = Transformer(vocab_size=vocab, ninp=32, nhead=2, nhid=64, nlayers=1, dropout=0.1)
        self.vocab = vocab

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, x).view(x.shape[0], x.shape[1], self.vocab)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.nll_loss(self(x).flatten(0, 1), y.flatten())

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.nll_loss(self(x).flatten(0, 1), y.flatten()))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def counting_tokens(n: int = 512, length: int = 12, vocab: int = 16, seed: int = 0):
    """Sequences ``s, s+1, ...`` (mod vocab) from random starts, and the same shifted by one as targets."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, vocab, (n, 1), generator=g)
    seq = (start + torch.arange(length + 1)) % vocab
    return seq[:, :-1], seq[:, 1:]


class SamplingBlock(nn.Module):
    """A VAE-style reparameterised layer that samples in training and evaluation alike (no dropout)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.mu, self.logvar = nn.Linear(n_in, n_out), nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.mu(x), self.logvar(x)
        return F.relu(mu + torch.randn_like(mu) * torch.exp(0.5 * logvar))


class Autoencoder(L.LightningModule):
    """An MLP autoencoder on bare pixel batches (no target): 64 -> 16 -> 64, MSE reconstruction."""

    def __init__(self, lr: float = 3e-3) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 64))
        self.lr = lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return F.mse_loss(self(batch), batch)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

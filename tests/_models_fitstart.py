"""Small real models and data for the fit-start checks (initial-loss, loss-input, input-scale, label-distribution)."""

from __future__ import annotations

from typing import Any, Callable, Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.demos import LightningTransformer
from torch import nn
from torch.utils.data import DataLoader, Dataset

from lightning_sanity.callbacks.data_checks import DataChecks
from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.findings import collector_for


def my_callbacks(**options: Any) -> list:
    """The two callbacks under test and the summary (other families stay out of these runs)."""
    loss_opts = {k: v for k, v in options.items() if k in ("expected_loss", "get_input", "get_target")}
    data_opts = {k: v for k, v in options.items() if k in ("get_input", "get_target", "data_batches")}
    return [LossInspector(**loss_opts), DataChecks(**data_opts), SanitySummary(print_summary=False)]


class FactsProbe(Callback):
    """Copies the collector's facts at the end of the first training batch (the collector is released later)."""

    def __init__(self) -> None:
        self.facts: dict[str, Any] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.facts:
            self.facts = dict(collector_for(trainer).facts)


class CNN(nn.Module):
    """Conv + BatchNorm on the 8x8 digits."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
        )
        self.head = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.view(-1, 1, 8, 8)).flatten(1))


class RowLSTM(nn.Module):
    """An LSTM reading the 8 rows of a digit as a sequence."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, 32, batch_first=True)
        self.head = nn.Linear(32, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.view(-1, 8, 8))
        return self.head(out[:, -1])


class DictClassifier(L.LightningModule):
    """Reads dict batches ``{"image": x, "label": y}``; optionally manual optimization."""

    def __init__(self, manual: bool = False, net: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.net = net or nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        self.loss = nn.CrossEntropyLoss()
        self.automatic_optimization = not manual

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.net(batch["image"]), batch["label"])
        if not self.automatic_optimization:
            opt = self.optimizers()
            opt.zero_grad()
            self.manual_backward(loss)
            opt.step()
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class DictDataset(Dataset):
    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.x[i], "label": self.y[i]}


class TokenTransformer(LightningTransformer):
    """Lightning's demo Transformer on random tokens (no download)."""

    def prepare_data(self) -> None:
        pass


def token_loader(vocab: int = 64, n: int = 256, length: int = 12, seed: int = 0) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(0, vocab, (n, length + 1), generator=gen)
    pairs = list(zip(data[:, :-1], data[:, 1:]))
    return DataLoader(pairs, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed))


class Regressor(L.LightningModule):
    """An MLP regressor; ``loss_fn(prediction (B, 1), target (B,))``."""

    def __init__(self, in_features: int = 10, loss_fn: Optional[Callable] = None, bias: Optional[float] = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, 32), nn.ReLU(), nn.Linear(32, 1))
        if bias is not None:
            with torch.no_grad():
                self.net[2].bias.fill_(bias)
        self.loss_fn = loss_fn or (lambda p, t: nn.functional.mse_loss(p.squeeze(-1), t))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)

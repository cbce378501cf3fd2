"""Models for the norm and activation checks' tests: healthy ones of several kinds, and ones with a known bug."""

from __future__ import annotations

from typing import Any, Optional

import lightning as L
import torch
from helpers import Classifier, digits, loader
from lightning.pytorch.demos import LightningTransformer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def mlp(depth: int = 2, width: int = 32, act: type = nn.ReLU, in_features: int = 64, classes: int = 10) -> nn.Sequential:
    layers: list[nn.Module] = []
    size = in_features
    for _ in range(depth):
        layers += [nn.Linear(size, width), act()]
        size = width
    return nn.Sequential(*layers, nn.Linear(size, classes))


def cnn() -> nn.Sequential:
    """A small CNN with BatchNorm on digits seen as 1x8x8 images."""
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
    )


class _LayerScaleBlock(nn.Module):
    """ConvNeXt's block as torchvision writes it: depthwise conv, LayerNorm, MLP, and a per-channel layer scale
    shaped ``(C, 1, 1)`` that starts at 1e-6, a direct parameter of the block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.norm = nn.GroupNorm(1, channels)
        self.mlp = nn.Sequential(nn.Conv2d(channels, 4 * channels, 1), nn.GELU(), nn.Conv2d(4 * channels, channels, 1))
        self.layer_scale = nn.Parameter(torch.full((channels, 1, 1), 1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layer_scale * self.mlp(self.norm(self.dw(x)))


def layer_scale_cnn() -> nn.Sequential:
    """A ConvNeXt-like CNN on digits seen as 1x8x8 images (healthy: the layer scales grow from 1e-6)."""
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), _LayerScaleBlock(16),
                         _LayerScaleBlock(16), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


class RowLSTM(nn.Module):
    """Reads a digit's 8 rows as a sequence of 8 features."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.lstm = nn.LSTM(8, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x.view(-1, 8, 8))
        return self.head(out[:, -1])


class Encoded(Classifier):
    """encoder -> head; ``mode`` puts a bug between them: "detach", "round" or "argmax"."""

    def __init__(self, mode: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = None
        self.encoder = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16))
        self.head = nn.Linear(16, 10)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        if self.mode == "detach":
            h = h.detach()
        elif self.mode == "round":
            h = torch.round(h)
        elif self.mode == "argmax":
            h = nn.functional.one_hot(h.argmax(-1), 16).float()
        return self.head(h)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc, self.backcast, self.head = nn.Linear(64, 32), nn.Linear(32, 64), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.fc(x))
        return x - self.backcast(h), self.head(h)


class ResidualStack(Classifier):
    """N-BEATS-like blocks: each returns ``x - backcast(h)`` for the next block and a head output; the last block's
    residual is computed and dropped (dead code, healthy). Bugs: ``mode="detach"`` feeds that residual to the output
    through ``.detach()`` (``"item"``: through ``.item()``); ``"dropped"`` hands every block the input, not the
    residual (each block's backcast is dropped)."""

    def __init__(self, mode: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = None
        self.blocks = nn.ModuleList([_Block() for _ in range(3)])
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, inputs = 0.0, x
        for block in self.blocks:
            resid, y = block(inputs if self.mode == "dropped" else x)
            x, out = resid, out + y
        if self.mode == "detach":
            out = out + 0.1 * x.detach()[:, :10]
        elif self.mode == "item":
            out = out + 0.0 * x.abs().mean().item()
        return out


class ZeroLoss(Classifier):
    """The loss is multiplied by 0 (a weight left at 0)."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return super().training_step(batch, batch_idx) * 0.0


class WithUnusedHead(Classifier):
    """Has an auxiliary head that is in the optimizer but only used in validation."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.aux = nn.Linear(64, 10)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_aux", nn.functional.cross_entropy(self.aux(x), y))


class FrozenBackbone(Classifier):
    """A frozen, eval-mode backbone (requires_grad=False, still passed to the optimizer) under a trained head."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.net = None
        self.backbone = nn.Sequential(nn.Linear(64, 48), nn.BatchNorm1d(48), nn.ReLU())
        self.backbone.requires_grad_(False)
        self.head = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))

    def on_train_epoch_start(self) -> None:
        self.backbone.eval()


class Cosine(Classifier):
    """Adam with a cosine schedule down to 0 over the run."""

    def __init__(self, steps: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.steps = steps

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class ManualTwoOptimizers(Classifier):
    """Manual optimization: encoder and head each with an optimizer (Adam and SGD), stepped every batch."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.net = None
        self.encoder = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        opt_a, opt_b = self.optimizers()
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        opt_a.zero_grad()
        opt_b.zero_grad()
        self.manual_backward(loss)
        opt_a.step()
        opt_b.step()
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self) -> Any:
        return [torch.optim.Adam(self.encoder.parameters(), lr=1e-2), torch.optim.SGD(self.head.parameters(), lr=0.1)]


class CorruptBatch(Classifier):
    """One training batch arrives with inputs 1e4 times too large (a corrupted shard)."""

    def __init__(self, at_step: int = 15, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.at_step = at_step

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        if self.global_step == self.at_step:
            x = x * 1e4
        return super().training_step((x, y), batch_idx)


class GrowingWeights(Classifier):
    """A loss term that rewards large weights (e.g. a sign error on a regulariser): the weights grow unbounded."""

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        return loss - 0.05 * sum(p.norm() for p in self.parameters())


def deep_linear(depth: int = 8, width: int = 64) -> nn.Sequential:
    """A deep linear stack, orthogonally initialised: diverges under SGD with a high learning rate."""
    layers = [nn.Linear(64 if i == 0 else width, width) for i in range(depth)]
    for layer in layers:
        nn.init.orthogonal_(layer.weight)
    return nn.Sequential(*layers, nn.Linear(width, 10))


class Tokens(LightningTransformer):
    """Lightning's demo Transformer on a synthetic next-token task (no download)."""

    def __init__(self, vocab: int = 16, length: int = 12, n: int = 256, lr: float = 0.1) -> None:
        super().__init__(vocab_size=vocab)
        from lightning.pytorch.demos import Transformer

        self.model = Transformer(vocab_size=vocab, ninp=32, nhead=2, nhid=64, nlayers=1, dropout=0.1)
        self.vocab, self.length, self.n, self.lr = vocab, length, n, lr

    def prepare_data(self) -> None:
        pass

    def train_dataloader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(0)
        start = torch.randint(0, self.vocab, (self.n, 1), generator=gen)
        step = torch.randint(1, 3, (self.n, 1), generator=gen)
        seq = (start + step * torch.arange(self.length + 1)) % self.vocab
        return DataLoader(TensorDataset(seq[:, :-1], seq[:, 1:]), batch_size=32, shuffle=True, generator=gen)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=self.lr)


def scaled_digits(factor: float, batch_size: int = 64) -> tuple[DataLoader, DataLoader]:
    x, y = digits()
    x = x * factor
    split = int(len(x) * 0.8)
    return loader(x[:split], y[:split], batch_size), loader(x[split:], y[split:], batch_size, shuffle=False)


__all__ = [name for name in dir() if not name.startswith("_")] + ["L"]

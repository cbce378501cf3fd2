"""Validation dataloaders after the first, for ``val-divergence``: each one's logged loss (Lightning's
``<name>/dataloader_idx_<k>`` beside loader 0's), its loss before training, the rows of its first full run and its
inputs' per-sample scales (:mod:`lightning_sanity.checks.input_shift`), so that every loader is judged on its own.
A second loader is often another site or another period: mixed into loader 0's figures it is diluted, judged beside
them it is not seen at all.

At most :data:`MAX_LOADERS` loaders are followed (state per loader is a few floats and, for one run, a float a
sample); loaders past them are left out and said so in the summary.

Example::

    >>> loader_key("val_loss/dataloader_idx_0", 2), loader_key("val_loss", 1)
    ('val_loss/dataloader_idx_2', None)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from lightning_sanity.batch import input_of
from lightning_sanity.callbacks._val_noise_facts import rows
from lightning_sanity.checks import input_shift as IS

log = logging.getLogger(__name__)

#: validation dataloaders judged (loader 0 included): bounded state; the few loaders a run has in practice.
MAX_LOADERS = 4
_SUFFIX = "/dataloader_idx_"


def loader_key(key: str, index: int) -> Optional[str]:
    """The name Lightning logs loader ``index``'s figure under, beside ``key`` (one loader's name), or None when
    ``key`` carries no dataloader index (one validation loader, or ``add_dataloader_idx=False``)."""
    base, sep, tail = key.rpartition(_SUFFIX)
    return f"{base}{_SUFFIX}{index}" if sep and tail.isdigit() else None


def finite(value: Any) -> Optional[float]:
    """A logged figure as a float, or None (absent, not a scalar, not finite)."""
    value = float(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else value
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass
class Loader:
    """One validation dataloader after the first."""

    index: int
    key: Optional[str] = None
    val: list[float] = field(default_factory=list)  # one per validation run after training started
    before: Optional[float] = None  # the sanity check's loss
    rows: int = 0  # target rows of the first full validation run (0: unknown)
    scales: list[torch.Tensor] = field(default_factory=list)  # per-sample input scales of that run, on the device
    first_done: bool = False  # the first full run is over
    lost: bool = False  # a validation run without its figure: the losses no longer pair with training's

    @property
    def split(self) -> str:
        """Its name among ``val-divergence``'s target splits."""
        return f"val{self.index}"

    @property
    def name(self) -> str:
        return f"validation dataloader {self.index}" + (f" (`{self.key}`)" if self.key else "")


class ExtraLoaders:
    """The validation dataloaders 1 .. ``MAX_LOADERS - 1``."""

    def __init__(self) -> None:
        self.loaders: dict[int, Loader] = {}
        self.dropped = 0  # the highest dataloader index seen past the cap (0: none)

    def get(self, index: int) -> Optional[Loader]:
        """Loader ``index``'s state (made on first sight), None for loader 0 and past the cap."""
        if index <= 0:
            return None
        if index >= MAX_LOADERS:
            self.dropped = max(self.dropped, index)
            return None
        return self.loaders.setdefault(index, Loader(index))

    def take(self, loader: Loader, batch: Any) -> None:
        """One batch of the first full validation run: its rows and its samples' input scales."""
        if loader.first_done:
            return
        n = rows(batch)
        loader.rows = loader.rows + n if n and loader.rows >= 0 else -1  # an unreadable batch: unknown
        if len(loader.scales) >= IS.MAX_BATCHES:
            return
        try:
            scales = IS.sample_scales(input_of(batch))
            if scales is not None:  # on the device, binned and read once at the end of fit
                loader.scales.append(scales)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence input scales of a validation dataloader failed", exc_info=True)

    def end_run(self, sanity: bool) -> None:
        if not sanity:
            for loader in self.loaders.values():
                loader.first_done = True

    def read(self, metrics: Mapping[str, Any], key: Optional[str], sanity: bool, index: Optional[int] = None) -> None:
        """Each loader's logged figure (only loader ``index``'s when given) at the end of a validation run, under the
        name beside loader 0's ``key``; ``sanity``: the loss before training."""
        for loader in self.loaders.values() if index is None else [self.loaders[index]]:
            name = loader_key(key, loader.index) if key else None
            value = finite(metrics.get(name)) if name else None
            loader.key = name or loader.key
            if sanity:
                loader.before = value if loader.before is None else loader.before
            elif value is None:
                loader.lost = True
            else:
                loader.val.append(value)

    def judged(self, runs: int) -> list[Loader]:
        """The loaders with a figure for each of the ``runs`` validation runs loader 0 has, in order."""
        return [self.loaders[i] for i in sorted(self.loaders)
                if not self.loaders[i].lost and self.loaders[i].val and len(self.loaders[i].val) == runs]

"""Validation samples that join the training data later in the run, for ``split-overlap``.

``reload_dataloaders_every_n_epochs`` lets a DataModule hand a new training set to later epochs: a "use all the
labelled data for the last epochs" trick (``ConcatDataset([train, val])``), pseudo-labels taken from validation.
The first epoch's fingerprints never see those samples. When the training loader is reloaded and has grown, one
epoch of it is fingerprinted again and compared with the first validation run's fingerprints.

Example::

    >>> late = LateTraining()
    >>> late.active
    False
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.callbacks._row_blocks import RowBlocks
from lightning_sanity.checks import splits as S


class LateTraining:
    """Fingerprints of one later training epoch, taken when the reloaded training loader has grown."""

    def __init__(self) -> None:
        self.batches: Optional[float] = None  # training batches of the first epoch
        self.baseline = 0.0  # the first epoch's share of validation samples in training
        self.epoch: Optional[int] = None  # the epoch being fingerprinted, then judged
        self.done = False
        self._rows = RowBlocks(halves=True)

    @staticmethod
    def watching(trainer: Any) -> bool:
        """Can later epochs get another training set? Only when Lightning reloads the training loader."""
        return bool(getattr(trainer, "reload_dataloaders_every_n_epochs", 0))

    @property
    def active(self) -> bool:
        return self.epoch is not None and not self.done

    def start(self, trainer: Any) -> None:
        """At an epoch's start: fingerprint this epoch when the reloaded loader holds more batches than the first."""
        batches = trainer.num_training_batches
        if self.done or self.epoch is not None or self.batches is None or not isinstance(batches, int):
            return
        if batches > self.batches:
            self.epoch = trainer.current_epoch

    def add(self, x: torch.Tensor) -> None:
        self._rows.add(x)

    def judge(self, val: torch.Tensor) -> Optional[tuple[int, int]]:
        """``(validation samples found in this epoch's training data, distinct validation samples)``, once."""
        self.done = True
        train = self._rows.hashes()
        self._rows.clear()
        return None if train is None else S.overlap(val, train[:, 0])[:2]

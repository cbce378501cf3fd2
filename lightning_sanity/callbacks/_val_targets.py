"""Target summaries of ``val-divergence`` per split: the first training epoch's and each validation dataloader's first
full run (``"val"`` for loader 0, ``"val1"`` ... for the others), their moments
(:mod:`lightning_sanity.checks.target_shift`) kept on the device and their class-column counts
(:mod:`lightning_sanity.checks.relabelled`), judged at the end of fit from the targets alone.

Example::

    >>> targets = SplitTargets()
    >>> targets.add("val1")
    >>> sorted(targets.moments)
    ['train', 'val', 'val1']
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

import torch

from lightning_sanity.callbacks._label_source import batch_target
from lightning_sanity.checks import relabelled as RL, target_shift as TS
from lightning_sanity.checks.validation import Divergence

log = logging.getLogger(__name__)


class SplitTargets:
    """Target moments and column counts per split, each until the split's first pass is over."""

    def __init__(self) -> None:
        self.moments: dict[str, Optional[torch.Tensor]] = {}
        self.done: dict[str, bool] = {}
        self.columns: dict[str, Optional[torch.Tensor]] = {}
        self.val_count = 0  # regression targets in loader 0's first full run (the noise of its mean)
        for split in ("train", "val"):
            self.add(split)

    def add(self, split: str) -> None:
        """Follow one more split (another validation dataloader)."""
        if split not in self.done:
            self.moments[split], self.done[split], self.columns[split] = None, False, None

    def take(self, facts: Mapping[str, Any], split: str, batch: Any, counted: bool = True) -> None:
        """One batch's targets; ``counted`` False for the sanity check's batches, which come again in the first
        validation run (their columns are counted once)."""
        if self.done[split]:
            return
        try:
            y = batch_target(batch, facts)  # `(users, items, rating)`: the rating
            if counted:
                self.columns[split] = RL.merge_counts(self.columns[split], RL.column_counts(y))
            moments = TS.target_moments(y)
            if counted and split == "val" and moments is not None:
                self.val_count += y.numel()  # on the host: the sanity check's batches are not counted
            if moments is None:
                self.done[split] = True
            else:  # on the device, read once at the end of fit
                self.moments[split] = TS.merge_moments(self.moments[split], moments)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence target moments failed", exc_info=True)
            self.done[split] = True

    def end_validation(self) -> None:
        """The first full validation run is over: its targets describe every validation split."""
        for split in self.done:
            self.done[split] = self.done[split] or split.startswith("val")

    def judge(self, split: str) -> Optional[Divergence]:
        """Validation split ``split``'s targets against the training targets."""
        return (TS.judge_target_shift(self.moments["train"], self.moments[split])
                or RL.judge_relabelled(self.columns["train"], self.columns[split]))

"""Glue for ``val-divergence``'s untrained gap (:mod:`lightning_sanity.checks.untrained_gap`): the sanity check's
validation rows, the counts a summed reduction would multiply a validation batch's target by (shapes only, no device
read), and the runs where the untrained model need not score the two splits alike, which are left out:

- the validation metric's name states another measure than the training loss (its units are unknown), or the loss
  has no natural zero (a shifted log-likelihood);
- the training loss is more than the recognised loss call (``facts["main_loss_share"]`` away from 1: a regulariser,
  an auxiliary head, a weighted sum of tasks), so the two sides need not be one figure;
- the model holds running statistics (``running_*`` buffers: BatchNorm), which eval mode uses at their initial
  0/1 before training: the validation forward is another function than the training one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import torch

from lightning_sanity.callbacks._label_source import batch_target
from lightning_sanity.callbacks._val_model_gap import MAIN_SHARE_TOLERANCE
from lightning_sanity.callbacks._val_noise_facts import rows, signed_loss
from lightning_sanity.checks.untrained_gap import judge_untrained_gap
from lightning_sanity.checks.validation import Divergence

log = logging.getLogger(__name__)


class UntrainedLook:
    """What the sanity check's validation batches say about the validation loss before training."""

    def __init__(self) -> None:
        self.rows = 0  # samples the validation loss before training averages
        self.counts: list[int] = []  # a batch's target rows and per-sample elements: factors of a summed loss

    def add(self, batch: Any) -> None:
        """Count one sanity-check validation batch."""
        self.rows += rows(batch)

    def count(self, batch: Any, facts: Mapping[str, Any]) -> None:
        """Keep the counts of a validation batch's target (the first after the sanity check, when the part of a tuple
        batch that holds it is known): its rows, elements per sample, and both."""
        try:
            target = batch_target(batch, facts)
            if isinstance(target, torch.Tensor) and target.dim() and target.numel():
                n = int(target.shape[0])
                self.counts = sorted({n, target.numel() // n, target.numel()})
        except Exception:  # never lose the run over a diagnostic: without counts nothing is judged
            log.debug("val-divergence target counts failed", exc_info=True)

    def judge(self, facts: Mapping[str, Any], pl_module: torch.nn.Module, same_units: bool, before: Optional[float],
              val: Sequence[float], train: Sequence[float], train_noise: Sequence[float]) -> Optional[Divergence]:
        """The untrained-gap finding, or None (nothing found, or a run where it is not judged)."""
        share = facts.get("main_loss_share")
        if (not same_units or not self.counts or signed_loss(facts, train, val, before)
                or not isinstance(share, (int, float)) or abs(share - 1) > MAIN_SHARE_TOLERANCE):
            return None
        try:
            if any(name.rsplit(".", 1)[-1].startswith("running_") for name, _ in pl_module.named_buffers()):
                return None
            initial = facts.get("initial_loss")
            return judge_untrained_gap(before, initial if isinstance(initial, (int, float)) else None, val, train,
                                       train_noise, self.rows, self.counts)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence untrained gap failed", exc_info=True)
            return None

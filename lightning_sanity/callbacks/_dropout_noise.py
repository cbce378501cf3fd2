"""``loss-trend`` glue for :func:`lightning_sanity.checks.dropout_noise.judge_dropout_noise`: the model's largest
dropout probability, and the losses before any update in training mode (``initial_loss``) and in evaluation mode
(``val_loss_before_training``, the sanity check's logged validation loss, handed over by ``val-divergence``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Optional

from torch import nn

from lightning_sanity.checks.dropout_noise import judge_dropout_noise
from lightning_sanity.checks.modes import DROPOUTS
from lightning_sanity.checks.validation import comparable
from lightning_sanity.checks.verdict import Verdict, _median


def dropout_noise_verdict(pl_module: nn.Module, values: Sequence[float], facts: dict[str, Any],
                          baseline: Optional[float]) -> Optional[Verdict]:
    """The dropout-noise verdict on a run seen whole, or None."""
    p = max((float(m.p) for m in pl_module.modules() if isinstance(m, DROPOUTS)), default=0.0)
    start_train, start_eval = facts.get("initial_loss"), facts.get("val_loss_before_training")
    if not p > 0 or not isinstance(start_train, (int, float)) or not isinstance(start_eval, (int, float)):
        return None
    if not comparable(float(start_eval), float(start_train)) or len(values) < 5:
        return None  # another loss or reduction on the validation side
    tail = _median(list(values)[-max(5, len(values) // 5):])
    return judge_dropout_noise(tail, baseline, float(start_train), float(start_eval), p)

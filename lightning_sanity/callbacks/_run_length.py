"""How long the run plans to be and how much of it a judgement saw: public trainer counters only, shared by the
callbacks that judge at the end of fit (``loss-trend``, ``lr-schedule``, ``prediction-jitter``, leakage).

Example::

    >>> run = RunProgress(planned=200, seen=50)
    >>> run.fraction(), run.words()
    (0.25, '25% of the planned training seen (50 of 200 batches)')
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import lightning.pytorch as pl

from lightning_sanity import cost


def planned_batches(trainer: "pl.Trainer") -> Optional[int]:
    """Training batches the run plans to see (``estimated_stepping_batches`` x accumulation), or None if unknown."""
    try:
        steps = cost.planned_steps(trainer)
    except Exception:  # misconfigured or unknowable length: judge without a plan
        return None
    if not isinstance(steps, (int, float)) or not math.isfinite(steps) or steps <= 0:
        return None
    accumulate = trainer.accumulate_grad_batches if trainer.lightning_module.automatic_optimization else 1
    return int(steps) * max(int(accumulate), 1)


def batches_before_fit(trainer: "pl.Trainer") -> int:
    """Batches already behind the run when this fit starts (a resumed run), from public counters."""
    if trainer.lightning_module.automatic_optimization:
        return int(trainer.global_step) * max(int(trainer.accumulate_grad_batches), 1)
    batches = trainer.num_training_batches
    return int(trainer.current_epoch * batches) if isinstance(batches, int) else 0


def seen_words(seen: int, planned: Optional[int], ended_normally: bool) -> str:
    """How much of the planned training the judgement saw, in words for a finding.

    >>> seen_words(50, 200, False)
    '25% of the planned training seen (50 of 200 batches)'
    >>> seen_words(40, 1000, True)
    'the run ended after 40 of 1000 planned batches (4%)'
    """
    if planned is None:
        return f"{seen} batches seen, planned length unknown"
    if ended_normally and seen < planned:
        return f"the run ended after {seen} of {planned} planned batches ({seen / planned:.0%})"
    return f"{min(seen / planned, 1.0):.0%} of the planned training seen ({seen} of {planned} batches)"


@dataclasses.dataclass
class RunProgress:
    """How far a fit is into its planned training: batches seen in this fit, batches behind it when it started
    (a resumed run), the planned total (None when unknown), and whether fit ended on its own."""

    planned: Optional[int] = None
    before: int = 0
    seen: int = 0
    ended_normally: bool = False

    def fraction(self) -> Optional[float]:
        """Fraction of the planned training seen, or None when the plan is unknown."""
        if self.planned is None:
            return None
        return (self.before + self.seen) / self.planned

    def words(self) -> str:
        """:func:`seen_words` for this run."""
        return seen_words(self.before + self.seen, self.planned, self.ended_normally)

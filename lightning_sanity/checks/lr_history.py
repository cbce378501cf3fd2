"""The learning-rate history of one param group, and the collapse judgement of ``lr-schedule`` on it.

Fed with host floats by :class:`~lightning_sanity.callbacks.loss_dynamics.LossDynamics`; the other
``lr-schedule`` judgements live in :mod:`lightning_sanity.checks.schedule`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

from lightning_sanity.checks.verdict import Verdict

# Learning-rate schedule: a collapse below 1 % of the largest learning rate seen (judged against the maximum, so
# warmup from 0 is fine), starting before half of the planned training and lasting (a warm restart recovers).
# Common healthy schedules stay above it until the second half: cosine and linear decay are at 50 % at
# mid-run, a one-cycle policy at about 80 %, the classic StepLR(30, 0.1) over 90 epochs reaches 1 % at epoch 60.
LR_COLLAPSE_RATIO = 1e-2
LR_COLLAPSE_BEFORE = 0.5


@dataclasses.dataclass
class LrHistory:
    """The learning rate of one param group over a run, fed with host floats: the largest value seen, and
    when (as a fraction of the planned training) it fell below ``ratio`` x that maximum, if it still is.

    >>> h = LrHistory("optimizer 0 (SGD), param group 0")
    >>> for step, lr in enumerate([0.1, 0.1, 0.001, 0.0001]):
    ...     h.update(lr, step=step, progress=step / 100)
    >>> h.judge(seen="4% of the planned 100 steps").kind
    'collapse'
    """

    where: str
    ratio: float = LR_COLLAPSE_RATIO
    initial: Optional[float] = None
    max_lr: float = 0.0
    last: Optional[float] = None
    collapsed_at_step: Optional[int] = None
    collapsed_at_progress: Optional[float] = None

    def update(self, lr: float, *, step: int, progress: Optional[float]) -> None:
        if not math.isfinite(lr):
            return
        if self.initial is None:
            self.initial = lr
        self.max_lr = max(self.max_lr, lr)
        self.last = lr
        # `<=` with a hair of slack: a decay of exactly 100x (0.1 * 0.01) must count despite float rounding.
        low = self.max_lr > 0 and lr <= self.ratio * self.max_lr * (1 + 1e-9)
        if low and self.collapsed_at_step is None:
            self.collapsed_at_step, self.collapsed_at_progress = step, progress
        elif not low:
            self.collapsed_at_step = self.collapsed_at_progress = None

    def judge(self, *, seen: str, before: float = LR_COLLAPSE_BEFORE) -> Optional[Verdict]:
        """A verdict when the rate collapsed before ``before`` of the planned training and stayed down."""
        if self.collapsed_at_step is None or self.collapsed_at_progress is None or self.last is None:
            return None
        if self.collapsed_at_progress >= before:
            return None
        data = {"initial_lr": self.initial, "max_lr": self.max_lr, "last_lr": self.last,
                "collapsed_at_step": self.collapsed_at_step,
                "collapsed_at_fraction": round(self.collapsed_at_progress, 3), "ratio": self.ratio}
        return Verdict(
            "collapse",
            f"The learning rate of {self.where} fell below {self.ratio:g}x its peak {self.max_lr:.3g} at step "
            f"{self.collapsed_at_step}, {self.collapsed_at_progress:.0%} into the planned training, and stayed there "
            f"(now {self.last:.3g}): the rest of the run barely trains; {seen}.",
            "Check the scheduler's step size and gamma against the run's length, and whether it steps every batch "
            "(`interval='step'`) when it was meant to step every epoch; schedules sized with "
            "`trainer.estimated_stepping_batches` reach their low values at the end as planned.",
            data,
        )

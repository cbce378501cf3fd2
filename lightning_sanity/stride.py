"""Per-step measurements on a stride that their measured cost sets, after a dense window at the start of the run.

Some measurements run on every training step although no judgement needs every step of them (per-layer gradient
norms, for instance: dead and vanishing layers are judged over many steps, growth over the run). Bugs show first
in the first steps, so those are all measured: the **dense window**, the first 5 % of the planned run, at least 50
steps and at most 200 (where bugs show does not grow with the plan: 5 % of a 20,000-step plan would keep a
1,000-step window dense for nothing). Over steps 25 to 50 the strided work is timed against the steps' CPU time,
which sets ``stride``: the stride that keeps its cost within half the suite's periodic budget (1 % of the training
time by default, :func:`lightning_sanity.cost.budget`), at most :data:`MAX_STRIDE`. After the dense window the
work runs every ``stride`` steps. A window whose every step costs ``stride`` times that share is shortened by the
same factor, to no fewer than :data:`DENSE_MIN` steps: on a model whose steps are cheap next to the measurement
(a tiny MLP's millisecond steps), 200 dense steps would cost several times the budget of the whole run's first
steps. Times are CPU times of the training thread, which other jobs on a shared machine disturb far less than
wall time. A model whose measurements are cheap next to its steps keeps a stride of 1.

All strided callbacks of one Trainer share one :class:`StepStride`, so their measured steps coincide. Work that
must see every step (the non-finite flag, replay capture) is never strided.

Example::

    >>> stride = StepStride(planned=2000)
    >>> stride.dense, stride.measure(0), stride.measure(99)
    (100, True, True)
"""

from __future__ import annotations

import math
import time
import weakref
from typing import Any, Optional

from lightning_sanity import cost

#: the dense window is at least this many steps...
DENSE_MIN = 50
#: ... or this share of the planned run, whichever is longer ...
DENSE_SHARE = 0.05
#: ... but at most this many steps.
DENSE_MAX = 200
#: the most steps between two measurements after the dense window (judgements still get 1 step in 16).
MAX_STRIDE = 16


class StepStride:
    """Which steps strided measurements run on (see the module docstring)."""

    def __init__(self, planned: Optional[int] = None) -> None:
        self.dense = min(DENSE_MAX, max(DENSE_MIN, math.ceil(DENSE_SHARE * planned))) if planned else DENSE_MIN
        self.stride = 1
        self.origin: Optional[int] = None  # the fit's first step (a resumed run starts above 0)
        self._timing_from = DENSE_MIN // 2  # past the first steps' warm-up; decided at DENSE_MIN
        self._started: Optional[float] = None
        self._timing_at = 0
        self._charged = 0.0
        self._decided = False

    def measure(self, step: int) -> bool:
        """Measure at global step ``step``? Every step of the dense window, then every ``stride``-th."""
        if self.origin is None:
            self.origin = step
        k = step - self.origin
        if not self._decided:
            if k < DENSE_MIN:
                if k >= self._timing_from and self._started is None:
                    self._started, self._charged, self._timing_at = time.thread_time(), 0.0, k
                return True
            self._decide(k)
        return k < self.dense or step % self.stride == 0

    @property
    def timing(self) -> bool:
        """Is the strided work being timed now (callers skip their clock reads otherwise)?"""
        return self._started is not None and not self._decided

    def charge(self, seconds: float) -> None:
        """Add the time of strided work in the current step (callers time their own strided code)."""
        self._charged += seconds

    def _decide(self, k: int) -> None:
        self._decided = True
        if self._started is None:
            return
        steps = max(k - self._timing_at, 1)
        step_time = (time.thread_time() - self._started) / steps
        per_step = self._charged / steps
        share = cost.budget()
        if share is None or share <= 0 or step_time <= 0:
            return
        share /= 2  # the other half for the periodic work (snapshots, charts)
        self.stride = int(min(MAX_STRIDE, max(1, math.ceil(per_step / (share * step_time)))))
        if self.stride > 1:  # each dense step costs ``stride`` times the share: a window shorter by that factor
            self.dense = max(DENSE_MIN, self.dense // self.stride)


_STRIDES: "weakref.WeakKeyDictionary[Any, StepStride]" = weakref.WeakKeyDictionary()


def stride_for(trainer: Any) -> StepStride:
    """The one :class:`StepStride` of ``trainer``'s current fit, made at its first use from the planned run."""
    found = _STRIDES.get(trainer)
    if found is None:
        try:
            planned = cost.planned_steps(trainer)
        except Exception:  # an unknowable length: the shortest dense window
            planned = None
        if not isinstance(planned, (int, float)) or isinstance(planned, bool) or not math.isfinite(planned):
            planned = None
        found = _STRIDES[trainer] = StepStride(int(planned) if planned else None)
    return found


def fresh(trainer: Any) -> StepStride:
    """A new :class:`StepStride` for ``trainer``'s fit that starts now (the previous fit's is forgotten)."""
    _STRIDES.pop(trainer, None)
    return stride_for(trainer)

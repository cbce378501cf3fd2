"""How often the suite's charts get a point: the Trainer's ``log_every_n_steps``, fitted to the planned run.

Lightning logs every ``log_every_n_steps`` steps (50 by default) whatever the run's length, so a 90-step run would
draw the suite's norm charts as one point, while a run that logs every step for 100k steps would write 100k points
per tag. The suite's periodic charts (gradient and weight norms, update ratios, activation statistics, BatchNorm
statistics) follow :func:`chart_every` instead: the Trainer's cadence while it gives between :data:`MIN_POINTS`
and :data:`MAX_POINTS` points over the planned run; a shorter run gets a point every ``planned // MIN_POINTS``
steps (at least :data:`MIN_POINTS` points, at most one per step), a longer one every multiple of
``log_every_n_steps`` that keeps it near :data:`MAX_POINTS` (so points still fall on the Trainer's logging
steps). ``log_every_n_steps=0`` (no logging) stays 0, and an unknown length (iterable data) keeps the Trainer's
cadence.

Example::

    >>> chart_every(90, 50), chart_every(2000, 50), chart_every(100_000, 1), chart_every(float("inf"), 50)
    (4, 50, 100, 50)
"""

from __future__ import annotations

import math
from typing import Any

from lightning_sanity import cost

#: fewest points a chart gets over a planned run (a curve, not a dot or two).
MIN_POINTS = 20
#: most points a chart gets over a planned run (TensorBoard keeps 1,000 scalars per tag by default anyway).
MAX_POINTS = 1000


def chart_every(planned_steps: Any, log_every_n_steps: Any) -> int:
    """Steps between two chart points for a run planned as ``planned_steps`` optimizer steps (see the module)."""
    log_every = int(log_every_n_steps or 0)
    if log_every <= 0:
        return 0
    if isinstance(planned_steps, bool) or not isinstance(planned_steps, (int, float)) or not math.isfinite(
            planned_steps) or planned_steps <= 0:
        return log_every
    if planned_steps / log_every < MIN_POINTS:
        return max(1, min(log_every, int(planned_steps) // MIN_POINTS))
    if planned_steps / log_every > MAX_POINTS:
        return math.ceil(planned_steps / (MAX_POINTS * log_every)) * log_every
    return log_every


def trainer_chart_every(trainer: Any) -> int:
    """:func:`chart_every` for ``trainer``'s planned length and ``log_every_n_steps``."""
    try:
        planned = cost.planned_steps(trainer)
    except Exception:  # an unknowable length: the Trainer's own cadence
        planned = None
    return chart_every(planned, getattr(trainer, "log_every_n_steps", 0))

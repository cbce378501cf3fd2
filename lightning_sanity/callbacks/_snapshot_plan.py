"""How often :class:`~lightning_sanity.callbacks.predictions.PredictionDynamics` snapshots its fixed batch and how
many samples it follows, from the planned run: decided once at the start of training.

``prediction-jitter`` needs its snapshots whatever the periodic budget (``_snapshot_history._REQUIRED_SNAPSHOTS``),
so on a short run they are the suite's largest fixed cost: each is an eval forward of the fixed batch. Unless
``predictions_batch_size`` is given, the fixed batch is cut so that those required forwards fit the periodic
budget of the planned training, down to ``FEWEST_SAMPLES``.

Example::

    >>> samples_for_run(planned=60, train_batch=64, budget=0.02)    # a 60-step run: the fewest
    24
    >>> samples_for_run(planned=100, train_batch=64, budget=0.02)   # 100 steps: 38
    38
    >>> samples_for_run(planned=400, train_batch=64, budget=0.02)   # long enough for all of it
    64
    >>> samples_for_run(planned=None, train_batch=64, budget=0.02)  # unknown length: the default
    64
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

import lightning.pytorch as pl

from lightning_sanity import cost
from lightning_sanity.batch import batch_size, slice_batch
from lightning_sanity.callbacks._run_length import batches_before_fit, planned_batches
from lightning_sanity.callbacks._snapshot_history import _REQUIRED_SNAPSHOTS, SnapshotClock
from lightning_sanity.checks.jitter import snapshot_every

log = logging.getLogger(__name__)

#: samples followed when the run leaves room for them (``predictions_batch_size=None``).
DEFAULT_SAMPLES = 64
#: never fewer: one and a half times jitter's smallest judgeable count (16 predictions), so a flip fraction near
#: its 0.3 threshold keeps a standard error of about 0.09 per snapshot, about 0.06 for the median of the 4 or more
#: late changes that jitter judges.
FEWEST_SAMPLES = 24
#: an eval forward of a batch costs about a third of a training step on it (forward, backward, update).
FORWARD_SHARE = 1 / 3
#: snapshot cadence when the planned length is unknown.
UNPLANNED_EVERY = 200


def samples_for_run(planned: Optional[int], train_batch: Optional[int], budget: Optional[float],
                    required: int = _REQUIRED_SNAPSHOTS + 1) -> int:
    """Samples of the fixed batch to follow: as many as keep ``required`` eval forwards of them within
    ``budget`` of ``planned`` training batches of ``train_batch`` samples, between ``FEWEST_SAMPLES`` and
    ``DEFAULT_SAMPLES``; the default when the length, the batch size or the budget is unknown."""
    if not planned or not train_batch or budget is None:
        return DEFAULT_SAMPLES
    fits = math.floor(budget * planned * train_batch / (required * FORWARD_SHARE))
    return max(FEWEST_SAMPLES, min(DEFAULT_SAMPLES, fits))


def train_batch_size(trainer: "pl.Trainer") -> Optional[int]:
    """The training loader's batch size when it states one (a plain ``DataLoader``), else None."""
    loader = getattr(trainer, "train_dataloader", None)
    size = getattr(loader, "batch_size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else None


def plan_snapshots(trainer: "pl.Trainer", clock: SnapshotClock, every: Optional[int], most: Optional[int],
                   fixed: Any) -> int:
    """Set ``clock``'s planned length and cadence (``every`` as given, or :func:`snapshot_every`); cut an
    already kept fixed batch (``fixed.batch``) to the samples the run affords, and return that count (``most``
    when the user gave it)."""
    try:
        clock.planned = planned_batches(trainer)
        clock.before = batches_before_fit(trainer)
        if every is None:
            log_every = max(1, int(getattr(trainer, "log_every_n_steps", 1) or 1))
            every = snapshot_every(cost.planned_steps(trainer), log_every)
        clock.every = every
    except Exception as err:  # never lose the run over a counter
        clock.planned, clock.before, clock.every = None, 0, UNPLANNED_EVERY
        log.debug("lightning_sanity: could not read the planned length: %r", err)
    if most is not None:
        return most
    try:
        kept = batch_size(fixed.batch) if fixed.batch is not None else None
        remaining = clock.planned - clock.before if clock.planned else None
        most = samples_for_run(remaining, train_batch_size(trainer) or kept, cost.budget())
        if kept is not None and kept > most:
            fixed.batch = slice_batch(fixed.batch, slice(0, most))
    except Exception as err:  # keep the batch as it is
        log.debug("lightning_sanity: could not size the fixed batch: %r", err)
        most = DEFAULT_SAMPLES
    return most

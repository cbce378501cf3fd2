"""``batchnorm-variance``'s judgement of a BatchNorm momentum that makes the running statistics follow single batches.

PyTorch's BatchNorm updates ``running <- (1 - m) * running + m * batch``: the momentum ``m`` is the weight of the
NEW batch (0.1 by default). Keras and TensorFlow write the same update with the weight of the OLD estimate
(``BatchNormalization(momentum=0.99)``), so a momentum copied literally from a Keras recipe gives ``m = 0.99``: the
running statistics are then essentially the last training batch's, and evaluation normalises with that one batch's
noise. Two facts name it, both known to the run:

- the configuration: ``m > 0.5``, the newest batch outweighs all earlier batches together. An exponential average
  of independent batch statistics has ``m / (2 - m)`` of one batch's variance, i.e. it averages ``(2 - m) / m``
  batches: fewer than 3 past this point (1.02 at 0.99), against 19 at PyTorch's default and 199 at 0.01.
- the measured consequence: the running variance (channel mean) moves at every step by at least
  :data:`MOVE_MIN` of itself (median over the steps seen). A layer whose batches all look alike (very large
  batches) is harmless whatever its momentum, and stays silent.

Example::

    >>> averaged_batches(0.99), averaged_batches(0.1)
    (1.02, 19.0)
    >>> follows_single_batches(0.99, [0.03, 0.02, 0.05] * 4)
    True
    >>> follows_single_batches(0.1, [0.03, 0.02, 0.05] * 4), follows_single_batches(0.99, [0.001] * 12)
    (False, False)
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Optional

#: Past this momentum the newest batch weighs more than all earlier ones together (``m > 1 - m``): the running
#: estimate averages fewer than ``(2 - m) / m = 3`` batches, so it follows single batches.
SINGLE_BATCH_MOMENTUM = 0.5
#: The median relative move of the running variance (channel mean) per step that shows the statistics jump with
#: each batch. At the default momentum 0.1 a 1% move needs batches whose channel-mean variance is 10% off the
#: estimate on the median step, several times the sampling noise of ordinary batches (3-5% at batch size 16 on
#: digits), so healthy layers stay far below; at a momentum near 1 the move is that sampling noise itself.
MOVE_MIN = 0.01
#: Steps with a measured move needed before judging: the median of fewer is one batch's luck.
MIN_STEPS = 10


def averaged_batches(momentum: float) -> float:
    """How many batches an exponential average with this momentum is worth, ``(2 - m) / m`` (its variance is
    ``m / (2 - m)`` of one batch's for independent batches), rounded to 3 significant digits."""
    return float(f"{(2.0 - momentum) / momentum:.3g}")


def single_batch_momentum(momentum: Optional[float]) -> bool:
    """Whether a layer's momentum gives the newest batch more weight than all earlier ones (None: a cumulative
    average, never)."""
    return momentum is not None and math.isfinite(momentum) and momentum > SINGLE_BATCH_MOMENTUM


def relative_move(before: float, after: float, floor: float) -> float:
    """``|after - before| / before`` of a channel-mean running variance, against at least ``floor``."""
    return abs(after - before) / max(before, floor)


def follows_single_batches(momentum: Optional[float], moves: Sequence[float], *, move_min: float = MOVE_MIN,
                           min_steps: int = MIN_STEPS) -> bool:
    """The verdict for one layer: a single-batch momentum and a median step move of at least ``move_min`` over at
    least ``min_steps`` measured steps."""
    if not single_batch_momentum(momentum) or len(moves) < min_steps:
        return False
    return statistics.median(moves) >= move_min

"""The untrained model scores validation far worse than training, and validation never catches up: ``val-divergence``'s
look before any update.

Before the first update the model is one function on both splits. Under one data distribution its validation loss
before training (the sanity check's) and its first training loss estimate the same quantity; a gap far beyond the
noise of both, in the same units, says the two splits are not prepared alike: validation targets not centred or
scaled the way training's are, inputs normalised differently. Neither estimate needs a baseline, so this holds for
any loss. What else can part them is ruled out by the glue (:mod:`lightning_sanity.callbacks._untrained_gap`) or
here:

- terms only in training (a regulariser, label smoothing, dropout, a class weight) raise the training side: only a
  validation loss *above* the training loss is judged, and the glue requires the training loss to be the recognised
  loss alone;
- a validation loss summed where training averages is the training figure times a count of the batch: a ratio
  within ``SCALE_FACTOR`` of the validation batch's rows or per-sample elements is no evidence;
- layers with running statistics (BatchNorm) use their initial 0/1 statistics in eval mode, another function than
  the training forward: the glue leaves such models out;
- a validation set deliberately drawn otherwise (the natural class mix beside a rebalanced training set, a later
  period) also shows an untrained gap, but a model that learns brings validation down to the untrained training
  loss's scale: the rule needs validation to stay above ``SCALE_FACTOR`` times it at every look, over at least
  ``MIN_VALIDATIONS`` looks, while the training loss fell far beyond its noise.

Example::

    >>> v = judge_untrained_gap(before=13.9, initial=1.07, val=[13.7, 13.5, 13.4], train=[0.94, 0.4, 0.16],
    ...                         train_noise=[0.2, 0.05, 0.03], before_rows=2048, counts=[1024])
    >>> v.kind, v.severity
    ('untrained-gap', 'warning')
    >>> judge_untrained_gap(before=13.9, initial=1.07, val=[1.7, 1.0, 0.6], train=[0.94, 0.4, 0.16],
    ...                     train_noise=[0.2, 0.05, 0.03], before_rows=2048, counts=[1024]) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

from lightning_sanity.checks.val_first_look import MIN_VALIDATIONS, NOISE_UNITS
from lightning_sanity.checks.val_noise import SAMPLE_SPREAD
from lightning_sanity.checks.validation import SCALE_FACTOR, Divergence


def _finite(*values: float) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def judge_untrained_gap(before: Optional[float], initial: Optional[float], val: Sequence[float],
                        train: Sequence[float], train_noise: Sequence[float], before_rows: int,
                        counts: Sequence[int]) -> Optional[Divergence]:
    """A warning when the validation loss before training ``before`` (a mean over ``before_rows`` samples) exceeds
    the first training loss ``initial`` by more than ``SCALE_FACTOR`` times and by ``NOISE_UNITS`` standard errors of
    the two (the single step's spread ``train_noise[0]``, the validation mean's sqrt(2) x its value over the rows),
    no validation after it (``val``, at least ``MIN_VALIDATIONS``) comes within ``SCALE_FACTOR`` times ``initial``,
    and the mean training loss ``train`` fell by ``NOISE_UNITS`` of its last step-to-step deviations; never when the
    ratio is within ``SCALE_FACTOR`` of one of ``counts`` (the validation batch's rows, per-sample elements).
    """
    if (before is None or initial is None or not _finite(before, initial) or before <= 0 or initial <= 0
            or before_rows < 2 or len(val) < MIN_VALIDATIONS or len(train) != len(val) or not train_noise
            or not _finite(*val, *train, train_noise[0], train_noise[-1])):
        return None
    ratio = before / initial
    if ratio <= SCALE_FACTOR or any(c >= 2 and c / SCALE_FACTOR <= ratio <= c * SCALE_FACTOR for c in counts):
        return None
    noise = math.hypot(train_noise[0], SAMPLE_SPREAD * before / math.sqrt(before_rows))
    drop = train[0] - train[-1]
    if before - initial <= NOISE_UNITS * noise or min(val) <= SCALE_FACTOR * initial:
        return None
    if not (drop > 0 and drop > NOISE_UNITS * train_noise[-1]):
        return None
    return Divergence(
        "untrained-gap", "warning",
        f"Before any update the model's validation loss ({before:.3g}) was {ratio:.3g} times its first training loss "
        f"({initial:.3g}), {(before - initial) / noise:.0f} times the noise of the two, and no validation came within "
        f"{SCALE_FACTOR:g} times that training loss (best {min(val):.3g}) while the training loss fell to "
        f"{train[-1]:.3g}: the same untrained function scores the two splits far apart, so the validation data are "
        "not prepared like the training data.",
        "Build both splits through one preprocessing path: the same target transform (centring on the training "
        "mean, scaling, log) and the same input normalisation, fitted on training; compare a batch of each split's "
        "targets and inputs. If validation is drawn from another distribution on purpose, nothing to do.",
        {"val_before_training": before, "initial_loss": initial, "ratio": ratio, "noise": noise,
         "best_val": min(val), "val_losses": [round(v, 6) for v in val[-20:]],
         "train_losses": [round(t, 6) for t in train[-20:]], "validations": len(val)},
    )

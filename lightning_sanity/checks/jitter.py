"""The math behind ``prediction-jitter``: when to snapshot the fixed batch, how far its predictions moved between
two snapshots, and whether they still oscillate late in the run instead of settling.

Pure functions on tensors and host floats; :class:`~lightning_sanity.callbacks.predictions.PredictionDynamics`
decides when to call them and where to report.

Example::

    >>> import torch
    >>> before = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    >>> after = torch.tensor([[0.4, 0.6], [0.1, 0.9]])
    >>> flip_fraction(before.argmax(-1), after.argmax(-1)).item()
    0.5
    >>> round(mean_abs_change(before, after, "classification").item(), 3)
    0.3
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import torch

from lightning_sanity.checks.verdict import Verdict, _median

#: snapshots planned over a run when the cadence is left to choose (plus one per epoch end), and the fewest steps
#: between two; below ``_MIN_ALIGNED_SNAPSHOTS`` snapshots, the cadence does not wait for logging steps.
_SNAPSHOTS_PER_RUN, _MIN_EVERY, _UNPLANNED_EVERY, _MIN_ALIGNED_SNAPSHOTS = 50, 5, 200, 20


def snapshot_every(planned_steps: Any, log_every_n_steps: int) -> int:
    """Steps between two fixed-batch snapshots: about 50 over the planned run (at least 5 steps apart), rounded
    up to a multiple of ``log_every_n_steps`` so that a snapshot's host read-back falls on a logging step, which
    syncs anyway, unless that leaves fewer than 20 snapshots (a short run: the extra forwards cost little there,
    and jitter needs enough snapshots to be judged). An unknown length gives 200 steps, aligned.

    >>> snapshot_every(120, 50), snapshot_every(230, 10), snapshot_every(5000, 50), snapshot_every(float("inf"), 50)
    (5, 10, 100, 200)
    """
    log_every = max(1, int(log_every_n_steps or 1))
    if not isinstance(planned_steps, (int, float)) or not math.isfinite(planned_steps) or planned_steps <= 0:
        return math.ceil(_UNPLANNED_EVERY / log_every) * log_every
    every = max(_MIN_EVERY, math.ceil(planned_steps / _SNAPSHOTS_PER_RUN))
    aligned = math.ceil(every / log_every) * log_every
    return every if planned_steps / aligned < _MIN_ALIGNED_SNAPSHOTS else aligned


# ------------------------------------------------------------------------------------------------ change between snapshots


def mean_abs_change(prev: torch.Tensor, cur: torch.Tensor, kind: str) -> torch.Tensor:
    """How far the predictions moved between two snapshots, as a 0-d tensor.

    Classification and sequence: mean total-variation distance between the probability vectors (0 = same, 1 =
    disjoint); binary: mean absolute change of the probabilities; regression: mean absolute change, output units.
    """
    diff = (cur.float() - prev.float()).abs_()
    if kind in ("classification", "sequence"):
        return diff.sum(-1).mean() / 2
    return diff.mean()


def flip_fraction(prev_classes: torch.Tensor, cur_classes: torch.Tensor,
                  mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Fraction of predictions (samples, tokens or labels) whose class changed between two snapshots.

    >>> flip_fraction(torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 0])).item()
    0.5
    """
    changed = (prev_classes != cur_classes).float()
    if mask is not None:
        return (changed * mask).sum() / mask.float().sum().clamp_min(1)
    return changed.mean()


# ------------------------------------------------------------------------------------------------ judgement


# snapshots falls below 0.1 within a few epochs (Adam or SGD, heavy dropout, batch size 8), while a learning rate
# high enough to bounce (Adam 0.3, SGD 1.0 with momentum) keeps 40-100 % of the samples flipping to the end.
# 0.3 leaves a wide margin for harder tasks, where more samples sit near a decision boundary; the practice
# write-ups (Karpathy's recipe, "visualize prediction dynamics") read such jitter as a too-high learning rate.
JITTER_FLIP_THRESHOLD = 0.3
# Regression: mean absolute change between snapshots, in units of the targets' standard deviation.
JITTER_CHANGE_THRESHOLD = 0.5
JITTER_MIN_LATE_SNAPSHOTS = 4
#: the last transitions whose median must still be above the threshold: jitter lasts to the end.
JITTER_END_TRANSITIONS = 3


def judge_jitter(
    changes: Sequence[float],
    *,
    measure: str,
    progress: Optional[float],
    seen: str,
    threshold: Optional[float] = None,
    predictions: Optional[int] = None,
) -> Optional[Verdict]:
    """Judge whether predictions keep oscillating late in training instead of settling.

    Args:
        changes: one figure per snapshot transition, in order: the flip fraction (``measure="flips"``) or the
            mean change relative to the targets' spread (``measure="change"``).
        progress: fraction of the planned training seen at the last snapshot, or None when unknown.
        seen: words for how much of the planned training was seen, for the message.
        threshold: overrides :data:`JITTER_FLIP_THRESHOLD` / :data:`JITTER_CHANGE_THRESHOLD`.
        predictions: how many predictions each flip fraction counts (samples, or supervised tokens): the late
            median must then clear the threshold by two of its standard errors, not by sampling noise.

    Returns None when the run settled, or was too short to tell (fewer than
    2 x :data:`JITTER_MIN_LATE_SNAPSHOTS` transitions, or less than half the planned training seen).

    >>> judge_jitter([0.5, 0.3, 0.1, 0.05, 0.02, 0.03, 0.0, 0.02], measure="flips", progress=1.0, seen="all") is None
    True
    >>> judge_jitter([0.6, 0.7, 0.5, 0.8, 0.6, 0.7, 0.5, 0.6], measure="flips", progress=1.0, seen="all").kind
    'jitter'
    """
    if threshold is None:
        threshold = JITTER_FLIP_THRESHOLD if measure == "flips" else JITTER_CHANGE_THRESHOLD
    values = [float(c) for c in changes if c is not None and math.isfinite(c)]
    if len(values) < 2 * JITTER_MIN_LATE_SNAPSHOTS or (progress is not None and progress < 0.5):
        return None
    half = len(values) // 2
    early, late = values[:half], values[half:]
    late_median, early_median = _median(late), _median(early)
    # Settling means the late changes are well below the early ones; jitter stays high to the end.
    settling = late_median < 0.5 * early_median
    # ... to the very end: a model still learning at its peak learning rate churns its predictions, then settles
    # in the last transitions as the rate anneals (a OneCycle run at another seed: 0.47, 0.23, 0.14).
    settled = _median(values[-JITTER_END_TRANSITIONS:]) < threshold
    if late_median < threshold + _sampling_margin(measure, threshold, predictions, len(late)) or settling or settled:
        return None
    data = {"late_median": round(late_median, 4), "early_median": round(early_median, 4),
            "snapshots": len(values) + 1, "late_snapshots": len(late), "measure": measure,
            "threshold": threshold}
    if progress is not None:
        data["fraction_of_planned_training_seen"] = round(progress, 3)
    if measure == "flips":
        what = (f"a median {late_median:.0%} of the fixed batch's predictions changed class between consecutive "
                f"snapshots over the last {len(late)} snapshots (early in the run: {early_median:.0%})")
    else:
        what = (f"the fixed batch's predictions moved by a median {late_median:.2f} target standard deviations "
                f"between consecutive snapshots over the last {len(late)} snapshots (early: {early_median:.2f})")
    return Verdict(
        "jitter",
        f"Predictions keep oscillating instead of settling: {what}; {seen}.",
        "Lower the learning rate by 3-10x (or add warmup and a decay schedule); if it persists, check that labels "
        "and data augmentation are consistent.",
        data,
    )


def _sampling_margin(measure: str, threshold: float, predictions: Optional[int], late: int) -> float:
    """Two standard errors of a flip fraction over ``predictions`` at the threshold: a binomial share, standard
    error ``sqrt(t(1 - t)/n)``. Not divided by the ``late`` snapshots: every snapshot counts the same fixed
    predictions, so the samples that sit near a decision boundary flip in each of them; a median over snapshots
    does not average out which samples the fixed batch happened to hold. Over 36 samples it is 0.15: a median of
    0.39 flips on a 36-sample batch is no evidence that more than 30 % of the data keeps flipping."""
    if measure != "flips" or not predictions or late <= 0:
        return 0.0
    t = min(max(threshold, 0.0), 1.0)
    return 2 * math.sqrt(t * (1 - t) / predictions)


#: fewer predictions than this make flip fractions too coarse to judge (1 sample flips 0 % or 100 %).
_MIN_JITTER_PREDICTIONS = 16
#: ... and for token-level outputs, fewer supervised tokens than this (targets not ignored). A flip fraction near the
#: 0.3 threshold over n tokens has a standard error of sqrt(0.21 / n): 64 tokens keep it below a fifth of the
#: threshold, so a few near-tied tokens of a masked LM (15 % of positions supervised) cannot decide the verdict.
_MIN_JITTER_TOKENS = 64
#: a masked regression loss counting fewer of the outputs than this share is not judged (see jitter_unjudgeable).
MASKED_SHARE = 0.5


def jitter_unjudgeable(kind: Optional[str], units: int, supervised: Optional[int], has_targets: bool,
                       target_scale: Optional[float], mask_share: Optional[float] = None) -> Optional[str]:
    """Why the fixed batch cannot be judged for jitter (the skip reason), or None when it can.

    ``units`` are its predictions (samples, or samples x tokens), ``supervised`` its tokens whose target is not
    ignored (sequences), ``target_scale`` the regression targets' standard deviation, ``mask_share`` the share of
    the elements a regression loss counts when a 0/1 mask selects them.

    >>> jitter_unjudgeable("classification", 8, None, True, None)
    'the fixed batch holds 8 predictions, too few to judge jitter (needs 16); pass a larger `predictions_batch`'
    >>> jitter_unjudgeable("classification", 64, None, True, None) is None
    True
    """
    if units < _MIN_JITTER_PREDICTIONS:
        return (f"the fixed batch holds {units} predictions, too few to judge "
                f"jitter (needs {_MIN_JITTER_PREDICTIONS}); pass a larger `predictions_batch`")
    if kind == "sequence" and supervised is not None and supervised < _MIN_JITTER_TOKENS:
        return (f"the fixed batch holds {supervised} supervised tokens (targets "
                f"not ignored), too few to judge jitter (needs {_MIN_JITTER_TOKENS}); pass a larger "
                "`predictions_batch`")
    if kind == "regression" and not has_targets:
        return ("the fixed batch has no targets matching the output (an "
                "autoencoder, or a target the batch reader did not find; pass `get_target=`) and the loss is "
                "not a classification loss: no class flips or target scale to judge changes by")
    if kind == "regression" and target_scale is None:
        return "regression targets without spread: no scale to judge changes"
    if kind == "regression" and mask_share is not None and mask_share < MASKED_SHARE:
        # The outputs the mask leaves out (a detector's offsets away from object centres) are never trained: they
        # drift freely, as the ignored tokens of a masked LM do, and their changes say nothing about settling.
        return (f"the regression loss counts {mask_share:.1%} of the outputs (a 0/1 mask); the others are not "
                "trained and drift freely, so changes of the whole output say nothing about settling")
    return None

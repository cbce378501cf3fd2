"""What ``val-divergence`` knows about the noise of its baseline comparison, from the run's facts: the validation
rows, the samples the baseline was estimated from, the spread of the constant prediction's loss, and whether the
loss has a natural zero at all.

Example::

    >>> noise = val_noise_model({"loss_kind": "cross_entropy", "label_counts": [300, 300],
    ...                          "baseline_from_label_prior": True}, 0.693, val_rows=600, train_rows=64)
    >>> noise.baseline_samples, noise.baseline_spread
    (600, 0.0)
    >>> signed_loss({"loss_kind": "gaussian_likelihood"}, [0.4, -0.3], [1.0, 0.7], 1.1)
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Mapping, Optional

import torch

from lightning_sanity.batch import split_batch
from lightning_sanity.checks.loss_baseline import trend_baseline
from lightning_sanity.checks.validation import comparable
from lightning_sanity.checks.val_noise import ValNoise, prior_spread

_CLASS_KINDS = ("cross_entropy", "binary_cross_entropy")


def rows(batch: Any) -> int:
    """Rows of a batch's target (0 when it cannot be read): a shape, no device read."""
    try:
        y = split_batch(batch)[1]
        return int(y.shape[0]) if isinstance(y, torch.Tensor) and y.dim() else 0
    except Exception:  # an unreadable batch: unknown
        return 0


def signed_loss(facts: Mapping[str, Any], train: Sequence[float], val: Sequence[float],
                before: Optional[float]) -> bool:
    """Whether the loss has no natural zero: a recognised loss that can be negative (a Gaussian or Poisson negative
    log-likelihood of a density), or a negative value seen. Shifting such a loss by a constant (the ``log 2 pi`` of
    ``full=True`` in validation only) keeps every ratio near 1, so ratios cannot tell it is the same loss."""
    kind = facts.get("loss_kind")
    if isinstance(kind, str) and kind in ("gaussian_likelihood", "poisson_likelihood"):
        return True
    values = list(train) + list(val) + ([before] if before is not None else [])
    return any(math.isfinite(v) and v < 0 for v in values)


def val_noise_model(facts: Mapping[str, Any], baseline: Optional[float], val_rows: int,
                    train_rows: int) -> Optional[ValNoise]:
    """The noise model of the validation loss against ``baseline``, or None without a validation row count.

    For cross-entropy on counted labels, the constant prediction's per-sample loss spreads as ``-ln p_y`` over the
    label prior (zero for balanced classes), and the baseline is estimated from every counted label (or, from the
    ``initial-loss`` check's first batch, ``train_rows``); otherwise the spread is sqrt(2) x the baseline."""
    if baseline is None or val_rows < 2:
        return None
    kind, counts = facts.get("loss_kind"), facts.get("label_counts")
    counted = (kind in _CLASS_KINDS and isinstance(counts, (list, tuple)) and len(counts) > 1
               and sum(counts) > 0)
    spread = prior_spread(counts) if counted else None
    if facts.get("labels_sorted") and kind == "cross_entropy":
        base_rows: Optional[int] = None  # ln C: the uniform prediction's loss, exact
    elif counted and facts.get("baseline_from_label_prior"):
        base_rows = int(sum(counts))
    else:
        base_rows = train_rows if train_rows >= 2 else None
    return ValNoise(int(val_rows), base_rows, spread)


def baseline_on_val_scale(facts: Mapping[str, Any], unit: Any, unit_note: Optional[str], key: Optional[str],
                          train: Sequence[float], val: Sequence[float],
                          before: Optional[float]) -> tuple[Optional[float], str]:
    """``(baseline, note)``: the input-independent baseline when it applies to one validation loss ``key`` (None
    otherwise), and the summary's note saying which. It applies when ``unit`` (of
    :func:`~lightning_sanity.checks.metric_units.loss_units`) is known, the loss has a natural zero and the loss
    ``before`` training is within :func:`~lightning_sanity.checks.validation.comparable` of the first training loss.
    """
    baseline, _ = trend_baseline(facts)
    initial = facts.get("initial_loss")
    if baseline is None:
        return None, "no input-independent baseline"
    if unit is None:
        return None, str(unit_note)
    if signed_loss(facts, train, val, before):
        baseline = None
        note = ("the loss can be negative (no natural zero): a ratio cannot tell that the validation loss is the "
                "training loss and not shifted by a constant; compared with itself only")
    elif before is None or not isinstance(initial, (int, float)):
        baseline, note = None, "no validation loss before training to tell it is on the training loss's scale"
    elif not comparable(before, float(initial)):
        baseline = None
        note = (f"`{key}` before training ({before:.3g}) is not on the scale of the first training loss "
                f"({float(initial):.3g}): compared with itself only")
    else:
        note = f"baseline {baseline:.3g}"
    return baseline, f"{unit_note}; {note}" if unit_note else note

"""Prediction, loss and learning-rate dynamics: the math behind ``prediction-jitter``, ``constant-output`` during
training, ``loss-trend`` and ``lr-schedule``, and the images of the prediction-dynamics charts.

Everything here is a pure function (or a small state holder fed with plain floats) on tensors and lists, so it
can be tested without a Trainer. The callbacks in ``lightning_sanity.callbacks.predictions`` and
``lightning_sanity.callbacks.loss_dynamics`` decide when to call them and where to report.

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

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Optional

import torch

from lightning_sanity.checks.loss_baseline import early_explosion, escalate_at_baseline, explosion_words

#: How a model's output on the fixed batch is read.
KINDS = ("classification", "binary", "regression", "sequence")

# ------------------------------------------------------------------------------------------------ reading outputs

_CE_WORDS = ("cross_entropy", "cross-entropy", "crossentropy", "nll", "softmax", "multiclass", "categorical")
_BINARY_WORDS = ("binary", "bce", "logistic", "sigmoid", "multilabel")
_NONNEGATIVE_WORDS = (*_CE_WORDS, *_BINARY_WORDS, "mse", "mean_squared", "l1", "mae", "huber", "smooth_l1", "kl")


def loss_kind_is(loss_kind: Any, family: str) -> bool:
    """Whether the free-form ``loss_kind`` fact (e.g. ``"cross_entropy"``, ``"bce_with_logits"``) names ``family``.

    ``family`` is ``"cross_entropy"``, ``"binary"`` or ``"nonnegative"`` (a loss that can never go below zero).

    >>> loss_kind_is("bce_with_logits", "binary"), loss_kind_is("cross_entropy", "binary")
    (True, False)
    """
    if not isinstance(loss_kind, str):
        return False
    text = loss_kind.lower()
    words = {"cross_entropy": _CE_WORDS, "binary": _BINARY_WORDS, "nonnegative": _NONNEGATIVE_WORDS}[family]
    if family == "cross_entropy" and any(w in text for w in _BINARY_WORDS):
        return False
    return any(w in text for w in words)


def output_kind(output: torch.Tensor, target: Optional[torch.Tensor], loss_kind: Any = None) -> Optional[str]:
    """How to read a model output of this shape: one of :data:`KINDS`, or None when it cannot be interpreted.

    (B, C) logits are classification only with evidence: (B,) integer targets in ``[0, C)``, or a cross-entropy
    loss kind; without a target or a classification loss, a (B, K) or larger output (an autoencoder's
    reconstruction) is regression-like. (B,) or (B, 1) are regression, or binary when the targets are 0/1 and the
    loss kind says binary; (B, T, C) with (B, T) integer targets (or no target and a cross-entropy loss) is a
    sequence; an output with the target's own floating shape is regression.

    >>> output_kind(torch.zeros(4, 10), torch.tensor([1, 2, 3, 4]))
    'classification'
    >>> output_kind(torch.zeros(4, 1), torch.tensor([0.0, 1.0, 1.0, 0.0]), "bce_with_logits")
    'binary'
    >>> output_kind(torch.zeros(4), torch.tensor([0.3, 1.5, 2.0, 0.1]))
    'regression'
    >>> output_kind(torch.zeros(4, 64), None), output_kind(torch.zeros(4, 10), None, "cross_entropy")
    ('regression', 'classification')
    """
    if not isinstance(output, torch.Tensor) or not output.is_floating_point() or output.dim() == 0:
        return None
    b = output.shape[0]
    if b < 1 or output.numel() == 0:
        return None
    float_target = isinstance(target, torch.Tensor) and target.is_floating_point()
    if output.dim() == 1 or (output.dim() == 2 and output.shape[1] == 1):
        if _is_binary_target(target) and loss_kind_is(loss_kind, "binary"):
            return "binary"
        return "regression"
    if float_target and tuple(target.shape) == tuple(output.shape):
        if loss_kind_is(loss_kind, "cross_entropy"):
            return "classification" if output.dim() == 2 else None  # soft labels
        if loss_kind_is(loss_kind, "binary"):
            return "binary"  # multi-label
        return "regression"
    # Class-wise readings (argmax, flips) need evidence: integer targets indexing the output's classes, or a
    # classification loss. Without it a (B, K) output is as likely reconstructed pixels or K regression values
    # (an autoencoder's batch has no target at all), and K-way argmax flips of those would be noise.
    ce_loss = loss_kind_is(loss_kind, "cross_entropy")
    int_target = isinstance(target, torch.Tensor) and not float_target and not target.dtype == torch.bool
    if output.dim() == 2:
        if ce_loss or (int_target and _indexes_classes(target, output.shape[0], output.shape[1])):
            return "classification"
        return "regression"
    if output.dim() == 3 and output.shape[-1] == 1:
        return "regression"
    if output.dim() >= 3:
        if int_target or (target is None and ce_loss):
            return "sequence"
        return "regression" if target is None else None
    return None


def _indexes_classes(target: torch.Tensor, samples: int, classes: int) -> bool:
    """Whether ``target`` is (B,) class indices in ``[0, classes)`` (soft labels are handled by the caller)."""
    if target.dim() != 1 or target.shape[0] != samples or target.numel() == 0:
        return False
    return bool(((target >= 0) & (target < classes)).all())


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


def _is_binary_target(target: Optional[torch.Tensor]) -> bool:
    if not isinstance(target, torch.Tensor) or target.numel() == 0:
        return False
    return bool(((target == 0) | (target == 1)).all())


def as_sequence(output: torch.Tensor, target: Optional[torch.Tensor]) -> torch.Tensor:
    """A dense output as (B, T, C): (B, T, C) stays, (B, C, *S) with (B, *S) targets becomes (B, prod(S), C).

    >>> as_sequence(torch.zeros(2, 5, 3, 4), torch.zeros(2, 3, 4, dtype=torch.long)).shape
    torch.Size([2, 12, 5])
    """
    if output.dim() == 3 and (target is None or tuple(target.shape) == tuple(output.shape[:2])):
        return output
    if target is not None and output.dim() >= 3 and tuple(target.shape) == (output.shape[0], *output.shape[2:]):
        return output.flatten(2).transpose(1, 2)
    return output.flatten(1, -2) if output.dim() > 3 else output


def probabilities(output: torch.Tensor, kind: str, loss_kind: Any = None) -> torch.Tensor:
    """Class probabilities (classification, sequence: softmax over the last dim), positive-class probabilities
    (binary: sigmoid), or the raw output as float (regression).

    Outputs that already are probabilities (rows in [0, 1] summing to 1; log-probabilities go through softmax
    unchanged anyway) are taken as they are.
    """
    out = output.detach().float()
    if kind in ("classification", "sequence"):
        is_probs = bool((out >= 0).all() and (out <= 1).all() and torch.allclose(out.sum(-1), torch.ones(()), atol=1e-3))
        return out if is_probs else out.softmax(-1)
    if kind == "binary":
        out = out.reshape(out.shape[0], -1)
        in_unit = bool((out >= 0).all() and (out <= 1).all())
        wants_logits = isinstance(loss_kind, str) and "logit" in loss_kind.lower()
        return out if in_unit and not wants_logits else out.sigmoid()
    return out.reshape(out.shape[0], -1)


def predicted_classes(probs: torch.Tensor, kind: str) -> Optional[torch.Tensor]:
    """Argmax class (classification: (B,), sequence: (B, T)), thresholded labels (binary), None (regression)."""
    if kind in ("classification", "sequence"):
        return probs.argmax(-1)
    if kind == "binary":
        return (probs > 0.5).long()
    return None


def usable_targets(target: Any, kind: str, probs: torch.Tensor) -> Optional[torch.Tensor]:
    """The targets in the form the prediction charts need, or None when they do not fit the output.

    Classification: (B,) class indices in range (soft labels become their argmax). Sequence: (B, T) indices,
    negative ones (padding, ``ignore_index=-100``) kept as they are. Binary: 0/1 of the output's shape. Regression:
    (B, K) floats.
    """
    if not isinstance(target, torch.Tensor) or target.shape[:1] != probs.shape[:1]:
        return None
    t = target.detach()
    if kind == "classification":
        if t.is_floating_point() and tuple(t.shape) == tuple(probs.shape):
            t = t.argmax(-1)
        if t.is_floating_point() or t.dim() != 1 or t.numel() == 0:
            return None
        return t.long() if bool((t >= 0).all() and (t < probs.shape[-1]).all()) else None
    if kind == "sequence":
        if t.is_floating_point():
            return None
        t = t.reshape(probs.shape[0], -1)
        if t.shape[1] != probs.shape[1]:
            return None
        return t.long() if bool((t < probs.shape[-1]).all()) else None
    if kind == "binary":
        t = t.reshape(probs.shape[0], -1).float()
        return t if t.shape == probs.shape and _is_binary_target(t) else None
    t = t.reshape(t.shape[0], -1).float()
    return t if t.shape == probs.shape else None


def true_class_probability(probs: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Each sample's probability of its true class, (B,): mean over valid tokens (sequence) or labels (binary).

    >>> true_class_probability(torch.tensor([[0.7, 0.3], [0.4, 0.6]]), torch.tensor([0, 0]), "classification")
    tensor([0.7000, 0.4000])
    """
    if kind == "classification":
        return probs.gather(-1, target[:, None])[:, 0]
    if kind == "sequence":
        valid = target >= 0
        p = probs.gather(-1, target.clamp_min(0)[..., None])[..., 0]
        return (p * valid).sum(1) / valid.sum(1).clamp_min(1)
    if kind == "binary":
        return (target * probs + (1 - target) * (1 - probs)).mean(1)
    raise ValueError(f"`kind` must be classification, sequence or binary, got {kind!r}.")


def fixed_batch_metrics(probs: torch.Tensor, target: torch.Tensor, kind: str) -> dict[str, torch.Tensor]:
    """Loss (cross-entropy of the probabilities, or MSE) and accuracy of the fixed batch, as 0-d tensors."""
    from torchmetrics.functional import mean_squared_error
    from torchmetrics.functional.classification import binary_accuracy, multiclass_accuracy

    if kind == "regression":
        return {"loss": mean_squared_error(probs, target)}
    if kind == "binary":
        p = probs.clamp(1e-7, 1 - 1e-7)
        loss = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
        return {"loss": loss, "accuracy": binary_accuracy(probs, target.long(), validate_args=False)}
    p_true = true_class_probability(probs, target, kind) if kind == "classification" else None
    if kind == "classification":
        loss = -p_true.clamp_min(1e-12).log().mean()
        acc = multiclass_accuracy(probs.argmax(-1), target, num_classes=probs.shape[-1], average="micro",
                                  validate_args=False)
        return {"loss": loss, "accuracy": acc}
    valid = target >= 0
    token_p = probs.gather(-1, target.clamp_min(0)[..., None])[..., 0]
    loss = -(token_p.clamp_min(1e-12).log() * valid).sum() / valid.sum().clamp_min(1)
    acc = multiclass_accuracy(probs.argmax(-1).flatten(), target.flatten(), num_classes=probs.shape[-1],
                              average="micro", ignore_index=-100, validate_args=False)
    return {"loss": loss, "accuracy": acc}


# ------------------------------------------------------------------------------------------------ change between snapshots


def mean_abs_change(prev: torch.Tensor, cur: torch.Tensor, kind: str) -> torch.Tensor:
    """How far the predictions moved between two snapshots, as a 0-d tensor.

    Classification and sequence: mean total-variation distance between the probability vectors (0 = same, 1 =
    disjoint); binary: mean absolute change of the probabilities; regression: mean absolute change, output units.
    """
    diff = (cur.float() - prev.float()).abs()
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


def _tolerance(dtype: torch.dtype, rtol: Optional[float], ulps: int) -> float:
    # A few ulps of the output's own precision: bf16/fp16 outputs round far more coarsely than fp32.
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return max(rtol if rtol is not None else 1e-5, ulps * eps)


def is_constant_across_samples(values: torch.Tensor, rtol: Optional[float] = None, atol: float = 1e-7) -> bool:
    """Whether every sample (dim 0) has the same values, up to a tolerance relative to their magnitude.

    >>> is_constant_across_samples(torch.tensor([[1.0, 2.0], [1.0, 2.0]]))
    True
    >>> is_constant_across_samples(torch.tensor([[1.0, 2.0], [1.0, 2.1]]))
    False
    """
    if values.dim() == 0 or values.shape[0] < 2:
        return False
    v = values.detach().reshape(values.shape[0], -1)
    if not v.is_floating_point():
        return bool((v == v[:1]).all())
    tol = atol + _tolerance(v.dtype, rtol, 2) * float(v.abs().amax())
    return float((v - v[:1]).abs().amax()) <= tol


def outputs_agree(a: torch.Tensor, b: torch.Tensor, rtol: Optional[float] = None, atol: float = 1e-6) -> bool:
    """Whether two evaluations of the same batch agree, up to a tolerance relative to the output's magnitude."""
    if a.shape != b.shape:
        return False
    a, b = a.detach(), b.detach()
    if torch.equal(a, b):  # the usual case, in one pass (NaNs never compare equal: they take the long way)
        return True
    if not a.is_floating_point():
        return False
    finite = torch.isfinite(a) & torch.isfinite(b)
    if not bool(torch.equal(torch.isfinite(a), torch.isfinite(b))):
        return False
    diff = (a.float() - b.float()).abs()[finite]
    if diff.numel() == 0:
        return True
    scale = float(a.float().abs()[finite].amax())
    return float(diff.amax()) <= atol + _tolerance(a.dtype, rtol, 8) * scale


# ------------------------------------------------------------------------------------------------ judgements


@dataclasses.dataclass
class Verdict:
    """What a judgement found: a short ``kind`` (e.g. ``"rising"``), the finding's message, advice and figures."""

    kind: str
    message: str
    advice: str
    data: dict[str, Any]
    severity: str = "warning"


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return float("nan") if n == 0 else (s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2]))


def _quantile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def rank_correlation(values: Sequence[float]) -> float:
    """Spearman correlation between position and value: +1 steadily rising, -1 steadily falling.

    >>> rank_correlation([1.0, 2.0, 3.0, 4.0]), rank_correlation([4.0, 3.0, 2.0, 1.0])
    (1.0, -1.0)
    """
    n = len(values)
    if n < 3:
        return 0.0
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    for r, i in enumerate(order):
        ranks[i] = float(r)
    mean = (n - 1) / 2
    cov = sum((i - mean) * (r - mean) for i, r in enumerate(ranks))
    var = sum((i - mean) ** 2 for i in range(n))
    return cov / var


# Prediction jitter. Healthy runs settle: on digits the share of the fixed batch that changes class between
# snapshots falls below 0.1 within a few epochs (Adam or SGD, heavy dropout, batch size 8), while a learning rate
# high enough to bounce (Adam 0.3, SGD 1.0 with momentum) keeps 40-100 % of the samples flipping to the end.
# 0.3 leaves a wide margin for harder tasks, where more samples sit near a decision boundary; the practice
# write-ups (Karpathy's recipe, "visualize prediction dynamics") read such jitter as a too-high learning rate.
JITTER_FLIP_THRESHOLD = 0.3
# Regression: mean absolute change between snapshots, in units of the targets' standard deviation.
JITTER_CHANGE_THRESHOLD = 0.5
JITTER_MIN_LATE_SNAPSHOTS = 4


def judge_jitter(
    changes: Sequence[float],
    *,
    measure: str,
    progress: Optional[float],
    seen: str,
    threshold: Optional[float] = None,
) -> Optional[Verdict]:
    """Judge whether predictions keep oscillating late in training instead of settling.

    Args:
        changes: one figure per snapshot transition, in order: the flip fraction (``measure="flips"``) or the
            mean change relative to the targets' spread (``measure="change"``).
        progress: fraction of the planned training seen at the last snapshot, or None when unknown.
        seen: words for how much of the planned training was seen, for the message.
        threshold: overrides :data:`JITTER_FLIP_THRESHOLD` / :data:`JITTER_CHANGE_THRESHOLD`.

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
    if late_median < threshold or settling:
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


# Loss trend. Window sizes: the head is the first tenth of the losses seen, the tail the last fifth, both at
# least 5 values; medians keep single noisy batches from deciding anything.
LOSS_MIN_VALUES = 20
#: the tail must be at least this far below the input-independent baseline (relative) to count as beating it.
#: 5 %: shuffled labels on digits sit within 1 % of ln(10) after several epochs; healthy runs end far below.
BASELINE_MARGIN = 0.05
#: "flat from the start": the tail median within 2 % of the head median.
FLAT_MARGIN = 0.02
#: "rising": the tail median at least twice the head median and the losses rank-correlated with time.
RISE_FACTOR = 2.0
RISE_CORRELATION = 0.6
#: the second half of the run ranks this strongly downward: still learning, not stuck.
STILL_FALLING_CORRELATION = 0.5
#: "still learning", exempt from the flat and baseline patterns: the whole run, in blocks, ranks this strongly
#: downward AND the tail got at least LEARNING_BELOW_BASELINE below the baseline. A cautious two-epoch fine-tune
#: (Adam 1e-4, class-weighted cross-entropy on digits) ends 3-4 % below ln 10 while still falling; shuffled labels
#: also drift down slowly as the net memorises (trend down to about -0.5 over 3-8 epochs) but stay within
#: 1-1.6 % of the baseline, so the distance from the baseline is what tells them apart.
LEARNING_CORRELATION = 0.5
LEARNING_BELOW_BASELINE = 0.02
#: values per block for the trend above: about 20 block means, so batch-to-batch noise does not hide a slow fall.
LEARNING_BLOCKS = 20
#: "the model is not using its inputs" is claimed only when the second half of the run has no trend left (|Spearman|
#: below this) and at least half of the planned training was seen; otherwise it may just be slow.
STUCK_CORRELATION = 0.3
STUCK_MIN_PROGRESS = 0.5


def _block_trend(values: Sequence[float], blocks: int) -> float:
    """Rank correlation of the means of about ``blocks`` consecutive blocks: a slow trend under noisy batches."""
    size = max(1, len(values) // blocks)
    means = [sum(values[i:i + size]) / len(values[i:i + size]) for i in range(0, len(values), size)]
    return rank_correlation(means)


#: "Bouncing above the baseline": late median below this fraction of the baseline, and at least this share of the
#: late values above the baseline itself.
BOUNCE_MEDIAN_BELOW, BOUNCE_SHARE = 0.65, 0.1


def judge_loss_trend(
    losses: Sequence[float],
    *,
    start: Optional[float] = None,
    batches_per_value: int = 1,
    progress: Optional[float],
    seen: str,
    baseline: Optional[float] = None,
    nonnegative: bool = False,
    min_progress: float = 0.25,
    baseline_min_progress: float = 0.3,
    rise_factor: float = RISE_FACTOR,
    flat_margin: float = FLAT_MARGIN,
    baseline_margin: float = BASELINE_MARGIN,
) -> tuple[Optional[Verdict], Optional[str]]:
    """Judge a training-loss history: rising, negative and falling without bound, flat from the start,
    oscillating strongly, or never clearly below the input-independent baseline.

    Args:
        losses: the finite training losses in order (one per batch, or averaged blocks of batches).
        start: the loss before the first update (``facts["initial_loss"]``); the first value when None.
        batches_per_value: training batches averaged into each of ``losses`` (long runs are thinned).
        progress: fraction of the planned training seen, or None when the plan is unknown.
        seen: words for how much of the planned training was seen, for the message.
        baseline: the best input-independent loss (``facts["baseline_loss"]``), or None.
        nonnegative: the loss function can never go below zero (cross-entropy, MSE, ...).
        min_progress: judge nothing before this fraction of the planned training.
        baseline_min_progress: judge "never beats the baseline" only after this fraction.
        rise_factor: "rising" needs the tail median at least this many times the head median.
        flat_margin: "flat from the start" needs the tail median within this fraction of the head median.
        baseline_margin: the tail must get this fraction below the baseline to count as beating it.

    Returns:
        ``(verdict, None)`` when something is wrong, ``(None, None)`` when healthy, ``(None, reason)`` when there
        was too little to judge. A verdict on a run seen whole whose end is not below the baseline is an error
        ("the model ends at the prior", see :func:`lightning_sanity.checks.loss_baseline.ends_at_baseline`).

    >>> verdict, _ = judge_loss_trend([2.3 + 0.1 * i for i in range(40)], progress=1.0, seen="all")
    >>> verdict.kind
    'rising'
    >>> judge_loss_trend([2.3 * 0.9 ** i for i in range(40)], progress=1.0, seen="all", baseline=2.3)
    (None, None)
    >>> slow_rise = [2.3 + 0.02 * i for i in range(40)]  # the tail is 1.3x the head
    >>> judge_loss_trend(slow_rise, progress=1.0, seen="all")
    (None, None)
    >>> judge_loss_trend(slow_rise, progress=1.0, seen="all", rise_factor=1.2)[0].kind
    'rising'
    """
    values = [float(v) for v in losses if v is not None and math.isfinite(v)]
    verdict, reason = _judge_loss_pattern(
        values, start=start, batches_per_value=batches_per_value, progress=progress, seen=seen, baseline=baseline,
        nonnegative=nonnegative, min_progress=min_progress, baseline_min_progress=baseline_min_progress,
        rise_factor=rise_factor, flat_margin=flat_margin, baseline_margin=baseline_margin)
    # Only a run seen whole (progress 1: it ended on its own or reached its plan) is judged to end at the prior.
    if verdict is not None and verdict.kind != "negative" and progress is not None and progress >= 1.0:
        escalate_at_baseline(verdict, values[-max(5, len(values) // 5):], baseline)
    return verdict, reason


def _judge_loss_pattern(values: list[float], *, start: Optional[float], batches_per_value: int,
                        progress: Optional[float], seen: str, baseline: Optional[float], nonnegative: bool,
                        min_progress: float,
                        baseline_min_progress: float, rise_factor: float, flat_margin: float,
                        baseline_margin: float) -> tuple[Optional[Verdict], Optional[str]]:
    n = len(values)
    if n < LOSS_MIN_VALUES:
        return None, f"too little to judge: {n} finite loss values (needs {LOSS_MIN_VALUES}); {seen}"
    if progress is not None and progress < min_progress:
        return None, f"too little of the planned training to judge ({seen}; needs {min_progress:.0%})"
    w_head, w_tail = max(5, n // 10), max(5, n // 5)
    head, tail = _median(values[:w_head]), _median(values[-w_tail:])
    late = values[n // 2:]
    start = values[0] if start is None or not math.isfinite(start) else float(start)
    data: dict[str, Any] = {"start": round(start, 6), "head_median": round(head, 6), "tail_median": round(tail, 6),
                            "values": n}
    if progress is not None:
        data["fraction_of_planned_training_seen"] = round(progress, 3)
    if baseline is not None:
        data["baseline"] = round(float(baseline), 6)

    # A loss that can never be negative but is: the optimizer minimises the negated objective.
    if nonnegative and tail < 0:
        return Verdict(
            "negative",
            f"The training loss went from {head:.4g} to {tail:.4g}, below zero, although the loss function cannot be "
            f"negative: the objective is sign-flipped and the model is pushed to make its errors larger; {seen}.",
            "Return the loss itself from training_step, not its negation (look for a stray minus sign or "
            "`maximize=True` in the optimizer).",
            data,
        ), None
    # Falling without bound below zero, an order of magnitude past its start: without knowing the loss function
    # this is the same sign flip (a bounded negative loss such as a Gaussian NLL stops within a few units).
    trend_late = rank_correlation(late)
    if tail < -10 * max(abs(head), 1.0) and trend_late < -RISE_CORRELATION:
        return Verdict(
            "negative",
            f"The training loss keeps falling without bound, from {head:.4g} to {tail:.4g}: a sign-flipped objective "
            f"(maximising the error) looks like this; {seen}.",
            "Check the sign of the loss returned from training_step and of every term added to it.",
            data,
        ), None

    trend = rank_correlation(values)
    data["rank_correlation"] = round(trend, 3)
    # Steady (rank-correlated with time) and ending at twice the start: by the median of the tail, or by its mean
    # when the climb steepens at the very end (the median lags there, and the climb is no early explosion).
    last = values[-max(5, n // 5):]
    data["tail_mean"] = round(sum(last) / len(last), 6)
    if head > 0 and trend >= RISE_CORRELATION and max(tail, data["tail_mean"]) >= rise_factor * head:
        return Verdict(
            "rising",
            f"The training loss rose steadily from {head:.4g} to {tail:.4g} ({tail / head:.1f}x): the optimizer is "
            f"making it worse, as with a flipped sign (gradient ascent) or a learning rate far too high; {seen}.",
            "Check the sign of the loss and of any gradient manipulation, that the optimizer minimises "
            "(`maximize=False`), and lower the learning rate by 10x.",
            data,
        ), None

    scale = max(abs(head), 1e-12)
    flat = abs(head - tail) <= flat_margin * scale
    constant = max(values) - min(values) <= 1e-7 * scale + 1e-12
    # A loss still falling steadily at the end is learning, only slowly (a small learning rate, a short run):
    # the verdicts below are for a loss that has stopped at the baseline, as with shuffled labels.
    # Only a loss that has come down overall can be "slow": one that ends above where it started is not learning.
    still_falling = trend_late < -STILL_FALLING_CORRELATION and tail < head
    learning = still_falling or (
        baseline is not None and tail < (1 - LEARNING_BELOW_BASELINE) * baseline
        and _block_trend(values, LEARNING_BLOCKS) <= -LEARNING_CORRELATION)
    # Slow but learning is no excuse once the planned run is over and its end still averages at or above the best
    # constant prediction (not merely within noise of it: a cautious fine-tune ends a few percent below, falling).
    if learning and progress is not None and progress >= 1.0 and baseline is not None and baseline > 0:
        tail_values = values[-max(5, n // 5):]
        learning = sum(tail_values) / len(tail_values) < baseline
    data["late_rank_correlation"] = round(trend_late, 3)
    explosion = early_explosion(values, start, baseline)
    if explosion is not None and not constant:
        words = explosion_words(explosion, start, tail, baseline, seen, data, batches_per_value)
        return Verdict("exploded", *words, data), None
    near_baseline = (baseline is not None and baseline > 0 and tail > (1 - baseline_margin) * baseline
                     and not learning)
    if constant or (flat and near_baseline):
        if constant:
            message = (f"The training loss stayed exactly constant at {head:.4g} from the start: nothing the model "
                       f"does changes it; {seen}.")
        else:
            message = (f"The training loss stayed flat from the start ({head:.4g} -> {tail:.4g}) at or above the "
                       f"input-independent baseline {baseline:.4g}: the model is not learning; {seen}.")
        return Verdict(
            "flat",
            message,
            "Check that the optimizer holds the model's parameters, that the loss is not multiplied by zero or "
            "detached, and raise the learning rate (try 10x) if it is tiny; if all that is right, check that inputs "
            "and labels stay paired and that inputs are not zeroed.",
            data,
        ), None

    # Strong oscillation: the loss keeps jumping far above where it started, late in the run, without having
    # come down overall. Healthy per-batch noise (small batches, heavy dropout) stays below the starting level
    # once the model learned anything, so 1.5x the start is a spike, not noise.
    if head > 0 and len(late) >= 10:
        spikes = sum(v > 1.5 * head for v in late)
        late_median = _median(late)
        if spikes >= max(3, 0.1 * len(late)) and late_median > 0.5 * head:
            data.update({"late_spikes": spikes, "late_values": len(late), "late_median": round(late_median, 6),
                         "late_max": round(max(late), 6)})
            return Verdict(
                "oscillating",
                f"The training loss oscillates strongly: {spikes} of the last {len(late)} values jumped above 1.5x its "
                f"starting level {head:.4g} (up to {max(late):.4g}) and its median {late_median:.4g} did not come "
                f"down; {seen}.",
                "Lower the learning rate by 3-10x; add gradient clipping or warmup if the spikes come with large "
                "gradients.",
                data,
            ), None

    # Oscillation around a level well below the baseline: once the model beats the best constant prediction by a
    # wide margin, a healthy run's batches stay below that constant; repeated jumps back above it mean updates
    # so large that each one undoes what was learned (a learning rate too high, short of diverging).
    if baseline is not None and baseline > 0 and len(late) >= 10:
        late_median = _median(late)
        above = sum(v > baseline for v in late)
        if late_median < BOUNCE_MEDIAN_BELOW * baseline and above >= max(4, BOUNCE_SHARE * len(late)):
            data.update({"late_above_baseline": above, "late_values": len(late), "late_median": round(late_median, 6),
                         "late_max": round(max(late), 6)})
            return Verdict(
                "oscillating",
                f"The training loss keeps jumping back above the input-independent baseline {baseline:.4g}: {above} of "
                f"the last {len(late)} values (up to {max(late):.4g}), although its median {late_median:.4g} is well "
                f"below it, so the updates keep undoing what was learned; {seen}.",
                "Lower the learning rate by 3-10x; add warmup or gradient clipping if the jumps come with large "
                "gradients.",
                data,
            ), None

    if near_baseline and (progress is None or progress >= baseline_min_progress):
        stuck = abs(trend_late) < STUCK_CORRELATION and progress is not None and progress >= STUCK_MIN_PROGRESS
        meaning = ("the model is not using its inputs" if stuck
                   else "the model has learned nothing its inputs tell yet (it may only be slow)")
        return Verdict(
            "baseline",
            f"The training loss never got clearly below the input-independent baseline: {tail:.4g} at the end vs "
            f"{baseline:.4g} for the best constant prediction; {meaning}; {seen}.",
            "Check that inputs and labels stay paired (no separate shuffling of labels), that inputs are not zeroed "
            "or constant after preprocessing, and that the model's forward actually uses its input.",
            data,
        ), None
    return None, None


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


# ------------------------------------------------------------------------------------------------ images

# Five anchors of matplotlib's perceptually uniform "viridis", interpolated linearly.
_VIRIDIS = torch.tensor([
    [0.267, 0.005, 0.329], [0.231, 0.322, 0.545], [0.129, 0.569, 0.549], [0.369, 0.788, 0.384], [0.993, 0.906, 0.144],
])


def colormap(values: torch.Tensor) -> torch.Tensor:
    """Map values in [0, 1] of shape (H, W) to an RGB image (3, H, W) in [0, 1] (viridis; NaN -> black).

    >>> colormap(torch.tensor([[0.0, 1.0]])).shape
    torch.Size([3, 1, 2])
    """
    v = values.detach().float().cpu()
    nan = torch.isnan(v)
    v = v.nan_to_num(0.0).clamp(0, 1) * (len(_VIRIDIS) - 1)
    lo = v.floor().long().clamp(max=len(_VIRIDIS) - 2)
    frac = (v - lo)[..., None]
    rgb = _VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac
    rgb[nan] = 0.0
    return rgb.permute(2, 0, 1).contiguous()


def scatter_image(prediction: torch.Tensor, target: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Prediction (up) against target (right) as a ``size`` x ``size`` image, with the ideal diagonal in grey.

    Pixels hit by a sample are coloured by how many samples fall on them (dark violet 1 ... yellow most).

    >>> img = scatter_image(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), size=16)
    >>> img.shape, bool(img[:, 0, 15].sum() > 2)
    (torch.Size([3, 16, 16]), True)
    """
    p = prediction.detach().float().cpu().flatten()
    t = target.detach().float().cpu().flatten()
    keep = torch.isfinite(p) & torch.isfinite(t)
    p, t = p[keep], t[keep]
    img = torch.zeros(3, size, size)
    diag = torch.arange(size)
    img[:, size - 1 - diag, diag] = 0.35
    if p.numel() == 0:
        return img
    lo, hi = float(torch.minimum(p.min(), t.min())), float(torch.maximum(p.max(), t.max()))
    span = hi - lo if hi > lo else 1.0
    col = ((t - lo) / span * (size - 1)).round().long().clamp(0, size - 1)
    row = (size - 1 - ((p - lo) / span * (size - 1)).round().long()).clamp(0, size - 1)
    counts = torch.zeros(size, size)
    counts.index_put_((row, col), torch.ones_like(p), accumulate=True)
    hit = counts > 0
    shade = colormap(0.35 + 0.65 * counts / counts.max())
    img[:, hit] = shade[:, hit]
    return img

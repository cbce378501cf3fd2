"""What a loss should be before any update: pure functions on one batch's loss call, for ``initial-loss``.

The loss of a uniform (or zero) prediction and of the best input-independent constant (label prior, target mean),
the bias that gives that constant, the loss per element whatever the reduction, and whether the model's average
prediction at init already follows the label prior. The closed forms per loss family are in
:mod:`lightning_sanity.checks.loss_priors`.

Example::

    >>> import torch
    >>> target = torch.tensor([0, 0, 0, 1])
    >>> e = expected_losses(LossCall("cross_entropy", torch.zeros(4, 2), target))
    >>> round(e.uniform, 4), round(e.baseline, 4), [round(b, 2) for b in e.best_bias]
    (0.6931, 0.5623, [-0.29, -1.39])
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from lightning_sanity.checks.losses import (
    BINARY, CLASSIFICATION, DISTRIBUTION, LossCall, class_rows, hard_targets, num_classes,
)


@dataclasses.dataclass
class LossExpectation:
    """What a loss should be before training, on one batch.

    ``uniform``: the loss of a uniform (classification) or zero (regression) prediction, per element.
    ``baseline``: the best input-independent loss, reached by a constant prediction (label prior, target mean).
    ``best_bias``: the final-layer bias that makes the constant prediction the best one, one value per output.
    ``prior``: the class frequencies (classification, weighted as the loss weighs them), else None.
    ``count``: how many elements the expectation is over (ignored targets excluded).
    """

    uniform: float
    baseline: float
    best_bias: list[float]
    prior: Optional[list[float]] = None
    count: int = 0
    bias_meaning: str = ""
    #: the best loss with one constant shared by every output (equal to ``baseline`` for a single output).
    shared_baseline: Optional[float] = None
    outputs: int = 1
    #: how ``baseline`` is obtained, for the checks' details (see :mod:`lightning_sanity.checks.loss_priors`).
    formula: str = ""


def entropy(p: torch.Tensor) -> float:
    """Entropy in nats of a probability vector (zeros contribute nothing)."""
    p = p[p > 0]
    return max(0.0, float(-(p * p.log()).sum()))


def class_prior(call: LossCall) -> tuple[torch.Tensor, int]:
    """The class frequencies of a cross-entropy target, weighted by the loss's class weights, and the count.

    With class weights ``w``, the weighted mean loss of a constant prediction ``q`` is minimised by ``q`` proportional
    to ``w_c n_c``; with label smoothing ``e`` the smoothed targets average to ``(1 - e) p + e / C``.
    """
    classes = num_classes(call)
    if hard_targets(call):
        t = call.target.detach().reshape(-1)
        t = t[(t != call.ignore_index) & (t >= 0) & (t < classes)]
        counts = torch.bincount(t.long(), minlength=classes).double()[:classes]
        n = int(t.numel())
    else:
        rows = class_rows(call.target).double()
        counts, n = rows.sum(0), rows.shape[0]
    if call.weight is not None and call.weight.numel() == classes:
        counts = counts * call.weight.detach().double().reshape(-1).to(counts.device)
    total = counts.sum()
    prior = counts / total if float(total) > 0 else torch.full((classes,), 1.0 / classes, dtype=torch.double)
    if call.label_smoothing:
        prior = (1 - call.label_smoothing) * prior + call.label_smoothing / classes
    return prior.cpu(), n


def _columns(values: torch.Tensor) -> torch.Tensor:
    """An element-wise loss's values as ``(rows, outputs)``: one column per output channel (dimension 1)."""
    values = values.detach().double()
    if values.dim() <= 1:
        return values.reshape(-1, 1)
    return values.movedim(1, -1).reshape(-1, values.shape[1])


def _huber(x: torch.Tensor, delta: float, smooth_l1: bool) -> torch.Tensor:
    a = x.abs()
    quad = 0.5 * x * x
    value = torch.where(a < delta, quad, delta * (a - 0.5 * delta))
    return value / delta if smooth_l1 else value


def _best_huber_constant(y: torch.Tensor, delta: float, smooth_l1: bool) -> torch.Tensor:
    """Per column, the constant minimising the mean Huber loss (convex in the constant: ternary search)."""
    lo, hi = y.min(0).values.clone(), y.max(0).values.clone()
    for _ in range(80):
        a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        fa = _huber(y - a, delta, smooth_l1).mean(0)
        fb = _huber(y - b, delta, smooth_l1).mean(0)
        left = fa <= fb
        hi = torch.where(left, b, hi)
        lo = torch.where(left, lo, a)
    return (lo + hi) / 2


def expected_losses(call: LossCall) -> Optional[LossExpectation]:
    """The uniform/zero-prediction loss and the best constant loss of ``call`` on its own batch, or None.

    None when the expectation is not defined (the baseline is unknown): shapes that do not match, an empty target,
    soft targets with negative entries, binary targets outside [0, 1]. ``formula`` says how the baseline is obtained.
    """
    from lightning_sanity.checks.loss_priors import REGRESSION_FORMULAS

    if call.kind in BINARY and call.target.numel() and bool(((call.target < 0) | (call.target > 1)).any()):
        return None  # -t ln q - (1 - t) ln(1 - q) is unbounded below for t outside [0, 1]
    e = _expected_losses(call)
    if e is not None and not e.formula:
        e.formula = REGRESSION_FORMULAS.get(call.kind, "")
    return e


def _expected_losses(call: LossCall) -> Optional[LossExpectation]:
    kind = call.kind
    if kind in CLASSIFICATION:
        classes = num_classes(call)
        if not hard_targets(call) and tuple(call.target.shape) != tuple(call.input.shape):
            return None
        from lightning_sanity.checks.loss_priors import classification_expectation

        return classification_expectation(call, classes)
    if kind in DISTRIBUTION:
        from lightning_sanity.checks.loss_priors import distribution_expectation

        return distribution_expectation(call)
    if tuple(call.input.shape) != tuple(call.target.shape) or call.target.numel() == 0:
        return None
    y = _columns(call.target)
    if kind in BINARY:
        w = torch.ones_like(y) if call.weight is None else _columns(torch.broadcast_to(call.weight, call.target.shape))
        pw = torch.ones(y.shape[1], dtype=y.dtype)
        if call.pos_weight is not None and kind == "binary_cross_entropy_with_logits":
            pw = torch.broadcast_to(call.pos_weight.detach().double().cpu().reshape(-1), (y.shape[1],))
        pw = pw.to(y.device)

        def bce(q: torch.Tensor) -> torch.Tensor:
            q = q.clamp(1e-12, 1 - 1e-12)
            return -(w * (pw * y * q.log() + (1 - y) * (1 - q).log()))

        pos, neg = (w * pw * y).sum(0), (w * (1 - y)).sum(0)
        q = pos / (pos + neg).clamp_min(1e-12)
        uniform = float(bce(torch.full_like(q, 0.5)).mean())
        baseline = float(bce(q).mean())
        bias = torch.log(q.clamp(1e-6, 1 - 1e-6) / (1 - q.clamp(1e-6, 1 - 1e-6)))
        return LossExpectation(uniform, baseline, _round(bias), _round(q, 4), y.shape[0] * y.shape[1],
                               "log(p / (1 - p)) of the positive rate")
    flat = y.reshape(-1, 1)
    if kind == "mse":
        mean = y.mean(0)
        return LossExpectation(float((y * y).mean()), float(((y - mean) ** 2).mean()), _round(mean), None,
                               y.numel(), "the target mean", float(flat.var(unbiased=False)), y.shape[1])
    if kind == "l1":
        median = y.median(0).values
        return LossExpectation(float(y.abs().mean()), float((y - median).abs().mean()), _round(median), None,
                               y.numel(), "the target median", float((flat - flat.median()).abs().mean()), y.shape[1])
    if kind in ("huber", "smooth_l1"):
        smooth = kind == "smooth_l1"
        if call.delta <= 0:
            return None
        best = _best_huber_constant(y, call.delta, smooth)
        shared = _best_huber_constant(flat, call.delta, smooth)
        return LossExpectation(float(_huber(y, call.delta, smooth).mean()), float(_huber(y - best, call.delta, smooth).mean()),
                               _round(best), None, y.numel(), "the constant that minimises the Huber loss",
                               float(_huber(flat - shared, call.delta, smooth).mean()), y.shape[1])
    return None


def _round(values: torch.Tensor, digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in values.reshape(-1).tolist()]


def observed_loss(call: LossCall, output: torch.Tensor) -> Optional[float]:
    """The loss per element, whatever the reduction: comparable with :func:`expected_losses`' figures."""
    value = output.detach().double()
    if call.reduction == "none":
        if call.kind in CLASSIFICATION and hard_targets(call):
            keep = call.target.detach().reshape(value.shape) != call.ignore_index
            if call.weight is not None and call.weight.numel() == num_classes(call):
                t = call.target.detach().clamp(0, num_classes(call) - 1).long()
                wsum = call.weight.detach().double().to(value.device)[t][keep].sum()
                return float(value[keep].sum() / wsum) if float(wsum) > 0 else None
            return float(value[keep].mean()) if bool(keep.any()) else None
        return float(value.mean()) if value.numel() else None
    total = float(value.reshape(-1)[0]) if value.numel() else None
    if total is None or call.reduction != "sum":
        return total
    expectation_count = _sum_normaliser(call)
    return total / expectation_count if expectation_count else None


def _sum_normaliser(call: LossCall) -> float:
    """What a ``reduction="sum"`` loss is divided by to become the per-element mean the expectations use."""
    if call.kind in CLASSIFICATION:
        if not hard_targets(call):
            return float(class_rows(call.target).shape[0])
        t = call.target.detach().reshape(-1)
        keep = t != call.ignore_index
        if call.weight is not None and call.weight.numel() == num_classes(call):
            t = t[keep].clamp(0, num_classes(call) - 1).long()
            return float(call.weight.detach().double().to(t.device)[t].sum())
        return float(keep.sum())
    return float(call.target.numel())


def mean_prediction(call: LossCall) -> Optional[torch.Tensor]:
    """The prediction averaged over the batch, as probabilities (per class, or per output for binary)."""
    x = call.input.detach()
    if call.kind in ("cross_entropy", "nll"):
        # Probabilities in float32, their mean accumulated in float64: a 32k-vocabulary LM's logits are not
        # copied to float64 whole (twice as much memory as the output itself).
        rows = class_rows(x).float()
        probs = rows.softmax(-1) if call.kind == "cross_entropy" else rows.exp()
        return (probs.sum(0, dtype=torch.float64) / rows.shape[0]).cpu()
    x = x.double()
    if call.kind == "binary_cross_entropy_with_logits":
        return _columns(x).sigmoid().mean(0).cpu()
    if call.kind == "binary_cross_entropy":
        return _columns(x).mean(0).cpu()
    return None


def init_matches_prior(prior: list[float], prediction: torch.Tensor, binary: bool) -> bool:
    """Whether the model's average prediction at init is already near the label prior.

    True when the prediction is at least twice as close (in KL divergence) to the prior as a uniform prediction
    is, or when the prior is close to uniform anyway. Used to tell a prior-initialised bias, or a loss whose
    class weights balance the classes, from a default initialisation on imbalanced labels.
    """
    p = torch.tensor(prior, dtype=torch.double)
    q = prediction.double().reshape(-1).clamp(1e-9, 1)
    if binary:
        p = torch.stack([p, 1 - p], -1)
        q = torch.stack([q, (1 - q).clamp_min(1e-9)], -1)
        uniform = torch.full_like(p, 0.5)
    else:
        p, q = p.unsqueeze(0), q.unsqueeze(0)
        uniform = torch.full_like(p, 1.0 / p.shape[-1])

    def kl(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.where(a > 0, a * (a.clamp_min(1e-12).log() - b.log()), torch.zeros_like(a)).sum(-1).mean())

    to_uniform = kl(p, uniform)
    return to_uniform < 0.02 or kl(p, q) < 0.5 * to_uniform

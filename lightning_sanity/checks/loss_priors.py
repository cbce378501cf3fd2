"""Input-independent baselines: the best loss a constant prediction reaches, with the formula that gives it.

A model that ignores its input can do no better than the best constant prediction; a model that has learned
anything beats it. Each function here takes what the run can see of the targets (class counts, target rows,
target columns) and returns a :class:`Prior`: the best constant's loss, the loss of the *uniform* prediction (the
one a default-initialised head makes), and the formula, for the checks' details. Where no closed form applies
(soft targets with negative entries, an ``nll_loss`` / ``kl_div`` fed something other than log-probabilities) the
functions return None: the baseline is unknown, not guessed.

Pure functions on tensors and lists; ``lightning_sanity.checks.loss_expectations.expected_losses`` calls them per batch and
``lightning_sanity.checks.loss_baseline.trend_baseline`` over every label the data checks counted.

Example::

    >>> p = cross_entropy_prior([70, 20, 7, 3])
    >>> round(p.value, 4), round(p.uniform, 4), p.formula
    (0.8629, 1.3863, 'H(p) = -sum_c p_c ln p_c of the label prior')
    >>> w = cross_entropy_prior([70, 20, 7, 3], weight=[0.36, 1.25, 3.57, 8.33])
    >>> round(w.value, 3), round(w.uniform, 3)
    (1.386, 1.386)
    >>> round(gaussian_nll_prior(torch.tensor([[1.0], [3.0]])).value, 4)
    0.5
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Optional

import torch


@dataclasses.dataclass
class Prior:
    """The best constant prediction's loss (``value``), the uniform prediction's (``uniform``), the constant itself
    (``best``: class probabilities, a positive rate, a mean...), and how the value was obtained (``formula``)."""

    value: float
    uniform: float
    best: list[float]
    formula: str


def _entropy(p: torch.Tensor) -> float:
    p = p[p > 0]
    return max(0.0, float(-(p * p.log()).sum()))


def cross_entropy_prior(counts: Sequence[float] | torch.Tensor, weight: Optional[Sequence[float] | torch.Tensor] = None,
                        smoothing: float = 0.0, normaliser: Optional[float] = None) -> Optional[Prior]:
    """Best constant of a (weighted, label-smoothed) cross-entropy / ``nll_loss`` with hard labels of these counts.

    PyTorch's mean reduction divides by ``W = sum_i w_{y_i}`` and spreads ``eps`` of each target uniformly over
    the C classes, so for a constant prediction ``q`` the loss is ``sum_c a_c (-ln q_c) / W`` with
    ``a_c = w_c ((1 - eps) n_c + eps N / C)``; it is least at ``q = a / sum a`` and worth
    ``(sum a / W) H(a / sum a)``; the uniform prediction costs ``(sum a / W) ln C``, which is ``ln C`` unless
    weights and smoothing are combined. ``normaliser`` overrides ``W`` (soft targets: the number of rows).

    Args:
        counts: per class, how many targets (or, for soft targets, the summed target mass) it has.
        weight: the loss's class weights, or None.
        smoothing: ``label_smoothing``.

    >>> round(cross_entropy_prior([50, 50]).value, 4)
    0.6931
    >>> p = cross_entropy_prior([100, 0, 0], smoothing=0.1)
    >>> round(p.value, 4), p.formula.startswith("min_q")
    (0.2911, True)
    >>> cross_entropy_prior([0, 0]) is None
    True
    """
    n = torch.as_tensor(counts, dtype=torch.double).reshape(-1).cpu()
    classes = n.numel()
    if classes < 1 or float(n.sum()) <= 0 or bool((n < 0).any()):
        return None
    w = torch.ones_like(n) if weight is None else torch.as_tensor(weight, dtype=torch.double).reshape(-1).cpu()
    if w.numel() != classes or bool((w < 0).any()):
        return None
    total = float(n.sum())
    a = w * ((1 - smoothing) * n + smoothing * total / classes)
    z = float((w * n).sum()) if normaliser is None else float(normaliser)
    if z <= 0 or float(a.sum()) <= 0:
        return None
    scale = float(a.sum()) / z
    q = a / a.sum()
    plain = (weight is None or bool((w == w[0]).all())) and not smoothing and normaliser is None
    formula = ("H(p) = -sum_c p_c ln p_c of the label prior" if plain else
               "min_q sum_c a_c(-ln q_c) / W = (sum a / W) H(a / sum a), a_c = w_c((1-eps) n_c + eps N/C), "
               f"W = {'sum_c w_c n_c' if normaliser is None else 'rows'}"
               + (f", eps = {smoothing:g}" if smoothing else ""))
    return Prior(scale * _entropy(q), scale * math.log(classes), [round(float(v), 4) for v in q], formula)


def soft_target_prior(rows: torch.Tensor, weight: Optional[torch.Tensor] = None, smoothing: float = 0.0) -> Optional[Prior]:
    """Best constant of a cross-entropy with probability targets, ``rows`` of shape ``(N, C)``.

    PyTorch smooths soft targets as ``(1 - eps) t + eps / C`` and divides the summed loss by N: the formula of
    :func:`cross_entropy_prior` with ``n_c = sum_i t_ic`` and ``W = N``. Rows that do not sum to 1 (multi-hot
    vectors) still give the best constant of the loss as written; a negative entry makes the loss unbounded below,
    so the baseline is unknown (None).

    >>> round(soft_target_prior(torch.tensor([[0.5, 0.5], [0.5, 0.5]])).value, 4)
    0.6931
    >>> soft_target_prior(torch.tensor([[1.5, -0.5]])) is None
    True
    """
    rows = rows.detach().double()
    if rows.dim() != 2 or rows.numel() == 0 or bool((rows < 0).any()):
        return None
    counts = rows.sum(0)
    n_rows = rows.shape[0]
    # counts already sum to the rows' total mass; smoothing adds eps / C of mass per row and class.
    classes = rows.shape[1]
    w = torch.ones(classes, dtype=torch.double) if weight is None else weight.detach().double().reshape(-1).cpu()
    if w.numel() != classes:
        return None
    a = w * ((1 - smoothing) * counts.cpu() + smoothing * n_rows / classes)
    if float(a.sum()) <= 0:
        return None
    scale = float(a.sum()) / n_rows
    q = a / a.sum()
    return Prior(scale * _entropy(q), scale * math.log(classes), [round(float(v), 4) for v in q],
                 "min_q mean_i sum_c w_c t_ic(-ln q_c) = (sum a / N) H(a / sum a), a_c = w_c sum_i t_ic"
                 + (" (smoothed targets)" if smoothing else ""))


def kl_div_prior(rows: torch.Tensor, log_target: bool = False, per_row: bool = False) -> Optional[Prior]:
    """Best constant of ``kl_div(log q, t)`` over target rows ``(N, C)``, per element (``per_row``: per row, as
    ``reduction="batchmean"``).

    The constant log-distribution minimising ``mean_i sum_c t_ic (ln t_ic - ln q_c)`` is ``q = t_bar / sum t_bar``
    (``t_bar`` the mean target row): the baseline is ``mean_i sum_c t_ic ln t_ic - sum_c t_bar_c ln q_c``, the
    mean divergence of the targets from their average. Unknown (None) when the targets are not non-negative.

    >>> round(kl_div_prior(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), per_row=True).value, 4)
    0.6931
    >>> kl_div_prior(torch.tensor([[1.0, 0.0], [0.0, 1.0]])).value == kl_div_prior(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), per_row=True).value / 2
    True
    """
    t = rows.detach().double()
    if log_target:
        t = t.exp()
    if t.dim() != 2 or t.numel() == 0 or not bool(torch.isfinite(t).all()) or bool((t < 0).any()):
        return None
    t_bar = t.mean(0)
    if float(t_bar.sum()) <= 0:
        return None
    q = t_bar / t_bar.sum()
    self_term = float(torch.where(t > 0, t * t.clamp_min(1e-300).log(), torch.zeros_like(t)).sum(1).mean())
    value = self_term - float(torch.where(t_bar > 0, t_bar * q.clamp_min(1e-300).log(), torch.zeros_like(t_bar)).sum())
    uniform = self_term + float(t_bar.sum()) * math.log(t.shape[1])
    scale = 1.0 if per_row else 1.0 / t.shape[1]
    return Prior(max(0.0, value) * scale, uniform * scale, [round(float(v), 4) for v in q],
                 "mean_i KL(t_i || t_bar) with t_bar the mean target row" + ("" if per_row else ", per element"))


def gaussian_nll_prior(columns: torch.Tensor, full: bool = False, eps: float = 1e-6) -> Optional[Prior]:
    """Best constant (mean and variance per output) of ``gaussian_nll_loss`` over targets ``(N, K)``.

    ``0.5 (ln v + (y - m)^2 / v)`` is least at ``m`` = the target mean and ``v`` = the target variance, where it
    is worth ``0.5 (ln v + 1)``; ``full=True`` adds ``0.5 ln 2 pi``. The "uniform" reference is the standard normal
    prediction (mean 0, variance 1): ``0.5 E[y^2]``.

    >>> p = gaussian_nll_prior(torch.tensor([[0.0], [2.0]]), full=True)
    >>> round(p.value, 4), round(p.uniform, 4)
    (1.4189, 1.9189)
    """
    y = columns.detach().double()
    if y.dim() != 2 or y.shape[0] < 2:
        return None
    var = y.var(0, unbiased=False).clamp_min(eps)
    const = 0.5 * math.log(2 * math.pi) if full else 0.0
    value = float((0.5 * (var.log() + 1)).mean()) + const
    uniform = float((0.5 * y * y).mean()) + const
    return Prior(value, uniform, [round(float(v), 4) for v in y.mean(0)],
                 "0.5 (ln var(y) + 1)" + (" + 0.5 ln 2 pi" if full else "") + " per output (mean and variance of "
                 "the targets)")


def poisson_nll_prior(columns: torch.Tensor, log_input: bool = True, full: bool = False,
                      eps: float = 1e-8) -> Optional[Prior]:
    """Best constant rate per output of ``poisson_nll_loss`` over count (or rate) targets ``(N, K)``, or None when a
    target is negative (no Poisson rate fits it, and the loss is unbounded below).

    With ``log_input=True`` the loss of a constant log-rate ``x`` is ``mean(exp(x) - y x)``, least at
    ``x = ln m`` (``m`` the column's mean target), where it is worth ``m - m ln m`` (``0`` for ``m = 0``, the
    infimum as ``x -> -inf``). With ``log_input=False`` it is ``mean(x - y ln(x + eps))``, least at ``x = m - eps``:
    ``m - eps - m ln m``. ``full=True`` adds the Stirling term ``y ln y - y + 0.5 ln(2 pi y)`` of every target
    above 1, which no prediction changes. The "uniform" reference is the rate-1 prediction (``x = 0``, or ``x = 1``
    without ``log_input``): ``1 - m ln(1 + eps)`` plus the same term.

    >>> p = poisson_nll_prior(torch.tensor([[1.0], [3.0]]))
    >>> round(p.value, 4), p.uniform, p.best
    (0.6137, 1.0, [0.6931])
    """
    y = columns.detach().double()
    if y.dim() != 2 or y.shape[0] < 1 or bool((y < 0).any()):
        return None
    m = y.mean(0)
    m_log_m = torch.where(m > 0, m * m.clamp_min(1e-300).log(), torch.zeros_like(m))
    if log_input:
        value = m - m_log_m
        uniform = torch.ones_like(m)
    else:
        value = torch.where(m > eps, m - eps - m_log_m, -m * math.log(eps))
        uniform = 1 - m * math.log1p(eps)
    const = 0.0
    if full:
        big = y > 1
        stirling = torch.where(big, y * y.clamp_min(1).log() - y + 0.5 * (2 * math.pi * y.clamp_min(1)).log(),
                               torch.zeros_like(y))
        const = float(stirling.mean())
    best = [round(float(v), 4) for v in (m.clamp_min(1e-6).log() if log_input else m)]
    formula = ("m - m ln m" if log_input else "m - m ln m (eps aside)") + (" + the Stirling term of y > 1" if full
                                                                          else "") + \
        " per output, m the mean target (the best constant rate is m)"
    return Prior(float(value.mean()) + const, float(uniform.mean()) + const, best, formula)


#: How the regression baselines are obtained, for the details (the functions live in ``checks/loss_expectations.py``).
REGRESSION_FORMULAS = {
    "mse": "var(y): the targets' variance (the best constant is their mean)",
    "l1": "mean |y - median(y)|: the best constant is the targets' median",
    "huber": "the Huber loss of the constant that minimises it (between the targets' median and mean)",
    "smooth_l1": "the smooth-L1 loss of the constant that minimises it (between the targets' median and mean)",
    "binary_cross_entropy": "mean over outputs of -(p ln p + (1-p) ln(1-p)), p each output's (weighted) positive rate",
    "binary_cross_entropy_with_logits": "mean over outputs of -(p ln p + (1-p) ln(1-p)), p each output's "
                                        "(weighted) positive rate",
}


def classification_expectation(call, classes: int):
    """The :class:`~lightning_sanity.checks.loss_expectations.LossExpectation` of a cross-entropy / ``nll_loss`` call on its
    own batch: hard labels (``ignore_index`` and out-of-range labels left out) or probability rows."""
    from lightning_sanity.checks.loss_expectations import LossExpectation
    from lightning_sanity.checks.losses import class_rows

    weight = call.weight if call.weight is not None and call.weight.numel() == classes else None
    smoothing = call.label_smoothing if call.kind == "cross_entropy" else 0.0
    if not torch.is_floating_point(call.target):
        t = call.target.detach().reshape(-1)
        t = t[(t != call.ignore_index) & (t >= 0) & (t < classes)]
        if t.numel() == 0:
            return None
        counts = torch.bincount(t.long(), minlength=classes).double()[:classes].cpu()
        prior = cross_entropy_prior(counts, None if weight is None else weight.detach(), smoothing)
        n = int(t.numel())
    else:
        rows = class_rows(call.target)
        prior = soft_target_prior(rows, weight, smoothing)
        n = int(rows.shape[0])
    if prior is None:
        return None
    q = torch.tensor(prior.best, dtype=torch.double)
    bias = [round(float(v), 3) for v in torch.log(q.clamp_min(1e-6))]
    return LossExpectation(prior.uniform, prior.value, bias, prior.best, n, "the log class frequencies",
                           formula=prior.formula)


def distribution_expectation(call):
    """The :class:`~lightning_sanity.checks.loss_expectations.LossExpectation` of a ``kl_div``, ``gaussian_nll_loss``
    or ``poisson_nll_loss`` call, or
    None (shapes that differ, targets that are not distributions)."""
    from lightning_sanity.checks.loss_expectations import LossExpectation

    if tuple(call.input.shape) != tuple(call.target.shape) or call.target.numel() == 0:
        return None
    if call.kind == "kl_div":
        from lightning_sanity.checks.distribution_axis import (distribution_axis, distribution_rows,
                                                               rows_per_batch_element)

        axis = distribution_axis(call.target, call.log_target)
        if axis is None:
            return None  # no axis of the target is a distribution: the baseline's sum runs over an unknown axis
        rows = distribution_rows(call.target, axis)
        batchmean = call.reduction == "batchmean"
        prior = kl_div_prior(rows, call.log_target, per_row=batchmean)
        if prior is None:
            return None
        if batchmean:  # sum / input.size(0): a (B, T, V) input sums T distributions per batch element
            k = rows_per_batch_element(call.target, axis)
            if k != 1:
                prior = dataclasses.replace(prior, value=prior.value * k, uniform=prior.uniform * k,
                                            formula=f"{prior.formula}, x {k:g} distributions per batch element")
        q = torch.tensor(prior.best, dtype=torch.double)
        return LossExpectation(prior.uniform, prior.value, [round(float(v), 3) for v in torch.log(q.clamp_min(1e-6))],
                               None, rows.shape[0], "the log of the mean target distribution", formula=prior.formula)
    y = call.target.detach().double()
    y = y.reshape(-1, 1) if y.dim() <= 1 else y.movedim(1, -1).reshape(-1, y.shape[1])
    if call.kind == "poisson_nll":
        prior = poisson_nll_prior(y, call.log_input, call.full, call.eps)
        meaning = "the log of the mean target" if call.log_input else "the mean target"
    else:
        prior = gaussian_nll_prior(y, call.full, call.eps)
        meaning = "the target mean"
    if prior is None:
        return None
    return LossExpectation(prior.uniform, prior.value, prior.best, None, y.numel(), meaning,
                           outputs=y.shape[1], formula=prior.formula)

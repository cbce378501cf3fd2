"""What a loss is fed, on the target side, and where a model starts: pure functions for ``loss-input`` and
``initial-loss``.

- :func:`soft_target_problem`: probability targets given to ``cross_entropy`` must be distributions (each row
  non-negative, summing to 1). Multi-hot vectors (a multi-label task) sum to the number of labels: cross-entropy
  then pushes every labelled class towards ``1 / k`` and is not a multi-label loss.
- :func:`kl_div_input_problem`: ``kl_div(input, target)`` expects ``input`` as log-probabilities (every value
  <= 0) and, unless ``log_target=True``, ``target`` as probabilities (every value >= 0). Probabilities given as
  the input make the "divergence" ``sum t (ln t - p)`` negative and meaningless.
- :func:`poisson_rate_floor_problem`: ``poisson_nll_loss`` with ``log_input=True`` (its default) reads its input
  as a log-rate. Fed a prediction that can never be negative (a Softplus / ReLU / exp head: the rate itself), every
  rate it implies is ``exp(input) >= 1``. Under the Poisson law the loss assumes, rates that are all >= 1 give a mean
  count >= 1 (``E y = E rate``) and a share of zero counts <= 1/e (``P(y = 0) = E exp(-rate) <= exp(-1)``); counts
  whose mean lies below 1, or whose zeros exceed 1/e, beyond chance, cannot be fitted at all.
- :func:`start_reference`: which input-independent prediction the first loss sits at: the uniform one (a default
  initialised head), the label prior (a prior-initialised bias), or neither (above both: overconfident or offset).

Example::

    >>> import torch
    >>> soft_target_problem(torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))["row_sum_max"]
    2.0
    >>> kl_div_input_problem(torch.tensor([[0.2, 0.8]]), torch.tensor([[0.5, 0.5]]))["what"]
    'probabilities'
    >>> start_reference(2.31, uniform=2.303, prior=1.9)
    'uniform'
    >>> poisson_rate_floor_problem(poisson_tally(torch.tensor([0.0, 0.0, 1.0, 0.0] * 100)))["zero_share"]
    0.75
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

#: Tolerance on a distribution's row sum: float32 softmax / one-hot rows sum to 1 within a few ulps; label
#: smoothing done by hand keeps the sum at 1.
ROW_SUM_TOLERANCE = 1e-3
#: One-sided normal quantile of 2.5e-4: two statistics (mean count, share of zeros) at two looks (the first batch,
#: the first epoch) keep the family's chance of a false alarm below 1e-3, the level of the suite's other
#: permutation and chance tests.
POISSON_Z = 3.48


def soft_target_problem(rows: torch.Tensor, tol: float = ROW_SUM_TOLERANCE) -> Optional[dict[str, Any]]:
    """Figures when probability targets ``(N, C)`` are not distributions (negative entries or rows not summing to
    1), else None.

    >>> soft_target_problem(torch.tensor([[0.3, 0.7], [1.0, 0.0]])) is None
    True
    >>> soft_target_problem(torch.tensor([[-0.5, 1.5]]))["negative"]
    1
    """
    # Targets in bf16 / fp16 round each entry by up to half an ulp: their row sums drift by up to C ulps.
    eps = torch.finfo(rows.dtype).eps if rows.is_floating_point() else 0.0
    rows = rows.detach().double()
    if rows.dim() != 2 or rows.numel() == 0:
        return None
    sums = rows.sum(-1)
    negative = int((rows < -tol).sum())
    off = int(((sums - 1).abs() > max(tol * rows.shape[-1] ** 0.5, eps * rows.shape[-1])).sum())
    if not negative and not off:
        return None
    multi_hot = bool(((rows == 0) | (rows == 1)).all()) and float(sums.max()) > 1
    return {"negative": negative, "rows_off": off, "rows": int(rows.shape[0]), "row_sum_min": round(float(sums.min()), 4),
            "row_sum_max": round(float(sums.max()), 4), "multi_hot": multi_hot}


def kl_div_input_problem(input: torch.Tensor, target: torch.Tensor, log_target: bool = False,
                         tol: float = 1e-4) -> Optional[dict[str, Any]]:
    """Figures when ``kl_div`` is fed the wrong thing, else None.

    ``what`` is ``"probabilities"`` (input rows in [0, 1] that sum to 1), ``"positive input"`` (input values above
    0: not log-probabilities) or ``"log target"`` (negative targets with ``log_target=False``: log-probabilities
    given as the target).

    >>> kl_div_input_problem(torch.tensor([[-0.2, -1.7]]), torch.tensor([[0.5, 0.5]])) is None
    True
    >>> kl_div_input_problem(torch.tensor([[-0.7, -0.7]]), torch.tensor([[-0.7, -0.7]]))["what"]
    'log target'
    """
    if input.is_floating_point():
        tol = max(tol, 2 * torch.finfo(input.dtype).eps)  # a log_softmax rounded to bf16 stays within 2 ulps of 0
    x = input.detach().float()
    if x.numel() and float(x.max()) > tol:
        rows = x.reshape(-1, x.shape[-1]) if x.dim() > 1 else x.reshape(1, -1)
        probs = bool(((rows >= -tol) & (rows <= 1 + tol)).all()) and bool(
            ((rows.sum(-1) - 1).abs() <= 1e-3 * rows.shape[-1]).all())
        return {"what": "probabilities" if probs else "positive input", "input_min": round(float(x.min()), 4),
                "input_max": round(float(x.max()), 4)}
    t = target.detach().float()
    if not log_target and t.numel() and float(t.min()) < -tol:
        return {"what": "log target", "target_min": round(float(t.min()), 4), "target_max": round(float(t.max()), 4)}
    return None


def start_reference(observed: float, uniform: float, prior: float, matches_prior: Optional[bool] = None) -> str:
    """Where the first loss sits: ``"uniform"``, ``"prior"``, ``"both"`` (the prior is the uniform one) or
    ``"above"`` (above the uniform prediction by more than a default initialisation explains).

    A default-initialised head has logits with a standard deviation of a few tenths: it costs ``s^2 / 2``, a few
    hundredths to a few tenths of a nat, above the uniform prediction. Above ``uniform + max(0.5, uniform / 4)`` the
    start is neither reference. ``matches_prior`` (the model's mean prediction is near the label prior) decides
    when given.

    >>> start_reference(1.0, uniform=1.386, prior=0.86), start_reference(1.39, uniform=1.386, prior=1.385)
    ('prior', 'both')
    >>> start_reference(6.0, uniform=2.3, prior=2.2)
    'above'
    """
    if not all(math.isfinite(v) for v in (observed, uniform, prior)):
        return "unknown"
    if abs(uniform - prior) <= max(0.01, 0.02 * abs(uniform)):
        return "both" if observed <= uniform + max(0.5, abs(uniform) / 4) else "above"
    if observed > max(uniform, prior) + max(0.5, abs(uniform) / 4):
        return "above"
    if matches_prior is not None:
        return "prior" if matches_prior else "uniform"
    return "prior" if abs(observed - prior) < abs(observed - uniform) else "uniform"


def poisson_tally(target: torch.Tensor) -> torch.Tensor:
    """``[count, zeros, sum, sum of squares, negatives]`` of count targets, float64 on their device (no sync): what
    :func:`poisson_rate_floor_problem` judges; tallies of several batches add up."""
    t = target.detach().reshape(-1).double()
    return torch.stack([torch.tensor(float(t.numel()), dtype=torch.float64, device=t.device), (t == 0).sum().double(),
                        t.sum(), (t * t).sum(), (t < 0).sum().double()])


def poisson_rate_floor_problem(tally: Any, z: float = POISSON_Z) -> Optional[dict[str, Any]]:
    """Figures when count targets (their :func:`poisson_tally`) cannot come from Poisson rates that are all >= 1,
    else None: the mean count's upper bound (``z`` standard errors) lies below 1, or the zero share's Wilson lower
    bound lies above ``1/e``.

    >>> poisson_rate_floor_problem(poisson_tally(torch.tensor([0.0, 1.0, 2.0, 3.0] * 100))) is None  # rates >= 1 fit
    True
    """
    n, zeros, total, squares, negatives = (float(v) for v in tally)
    if n < 2 or negatives > 0:  # negative targets are not counts: another bug, not this one
        return None
    mean = total / n
    var = max(squares / n - mean * mean, 0.0) * n / (n - 1)
    mean_upper = mean + z * math.sqrt(var / n)
    p = zeros / n
    zero_lower = (p + z * z / (2 * n) - z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
    if mean_upper >= 1 and zero_lower <= math.exp(-1):
        return None
    return {"targets": int(n), "mean_count": round(mean, 4), "mean_count_upper": round(mean_upper, 4),
            "zero_share": round(p, 4), "zero_share_lower": round(zero_lower, 4), "zero_share_bound": round(math.exp(-1), 4),
            "best_constant_log_rate": round(math.log(mean), 4) if mean > 0 else None}


def poisson_target_problem(target: torch.Tensor) -> Optional[dict[str, Any]]:
    """Figures when ``poisson_nll_loss`` targets are negative, else None. A Poisson target is a count or a rate,
    never below 0; with a negative target ``y`` the loss ``exp(x) - y x`` (or ``x - y ln x``) has no minimum and
    falls without bound as the prediction goes to -inf (or 0): z-scored counts do this.

    >>> poisson_target_problem(torch.tensor([-1.0, 0.5, 2.0]))["negative"]
    1
    >>> poisson_target_problem(torch.tensor([0.0, 3.0])) is None
    True
    """
    t = target.detach()
    if not t.numel():
        return None
    negative = int((t < 0).sum())
    if negative == 0:
        return None
    return {"targets": int(t.numel()), "negative": negative, "target_min": float(t.min()),
            "target_max": float(t.max()), "target_mean": float(t.double().mean())}

"""The BatchNorm variance tests: running variance blow-up, a batch far out of line, collapse toward zero.

Everything works on per-layer summaries: for each BatchNorm layer, the mean and the max over channels of its
running variance, taken before and after one training step. Two fused reductions give those for all layers at
once, so the per-step cost does not grow with the number of channels.

The batch's own variance comes for free from the running-statistics update. In train mode a BatchNorm layer does
``running_var <- (1 - m) * running_var + m * batch_var`` (``m`` the momentum, ``1 / num_batches_tracked`` when the
momentum is None), so the channel mean of the batch variance is
``(mean_after - (1 - m) * mean_before) / m``: exact when the layer ran one forward in the step, no hook needed.

Example::

    >>> import torch
    >>> before = torch.tensor([1.0, 1.0]); after = torch.tensor([0.9 + 0.1 * 5000.0, 1.05])
    >>> [round(v, 3) for v in batch_variance_mean(before, after, torch.tensor([0.1, 0.1])).tolist()]
    [5000.0, 1.5]
    >>> warmup_steps(0.1), warmup_steps(0.01), warmup_steps(None)
    (44, 459, 10)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import torch
from torch import Tensor, nn

#: Running variance (channel mean of a layer) growing this many times within ONE step. A healthy batch
#: moves the running variance by a factor (1 - m) + m * ratio; with the default momentum 0.1, x100 needs a batch
#: whose variance is about 1000 times the running estimate: a broken batch or diverging weights, never noise.
JUMP_STEP = 100.0
#: ... or this many times over the last WINDOW steps: orders of magnitude in a few dozen steps is divergence.
#: Healthy training changes pre-BatchNorm activation scales by small factors over hundreds of steps.
JUMP_WINDOW = 1000.0
WINDOW = 25
#: A batch whose channel-mean variance is this many times the running estimate before it (a bad-luck batch).
#: Sampling noise of a batch variance is a factor of a few even at batch size 2 once averaged over channels; a
#: sample with an outlier 100 standard deviations out lifts one channel of 64 only about 5 times on average.
BATCH_RATIO = 100.0
#: During warm-up the running estimate still carries much of its initial 1.0, whatever the data's scale, so a
#: batch is compared instead with the UPPER QUARTILE of the batch variances recovered over the last
#: ``REFERENCE_BATCHES`` steps, once at least ``REFERENCE_MIN`` are known. A quantile ignores earlier bad batches
#: (up to 3 of 15), and with the same 100x factor healthy spread stays far below: the channel mean of a batch
#: variance varies by a factor of a few between batches even at batch size 8 (chi-square with 7 degrees of freedom
#: per channel, then averaged), and mixup or dropout only shrink that spread. The upper quartile rather than the
#: median, and 5 batches rather than 3: in simulation, one channel at batch size 2 crossed 100x the median of 3-15
#: earlier batches in 3% of 44-step warm-ups, and never its upper quartile of 5-15.
REFERENCE_BATCHES = 15
REFERENCE_MIN = 5
REFERENCE_QUANTILE = 0.75
#: Collapse: the layer's channel-mean running variance fell this many times below its peak since warm-up AND
#: below ``COLLAPSE_EPS_FACTOR * eps``, where ``eps`` (added to the variance before the square root) starts to
#: dominate: the layer then no longer normalizes by the data's scale and amplifies noise.
COLLAPSE_DROP = 1000.0
COLLAPSE_EPS_FACTOR = 100.0
#: Below ``FLOOR_EPS_FACTOR * eps`` a variance is noise level for BatchNorm; ratios are taken against at least it,
#: so constant features (zero-variance channels, such as the always-blank border pixels of digit images) never
#: produce huge ratios from tiny numbers.
FLOOR_EPS_FACTOR = 10.0
#: The initial running variance (1.0) must weigh less than this in the running estimate before anything is judged.
WARMUP_RESIDUAL = 0.01


def batchnorm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every BatchNorm layer (1d/2d/3d, SyncBatchNorm, lazy variants) that keeps running statistics, by name."""
    return [
        (name, m) for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]


#: the running statistics of a BatchNorm layer, in the order the step capture copies them
STAT_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def stat_buffer_keys(layers: Sequence[tuple[str, nn.Module]]) -> list[str]:
    """``state_dict`` keys of the running statistics of ``layers`` (from :func:`batchnorm_layers`), in capture order.

    >>> stat_buffer_keys([("bn", nn.BatchNorm1d(2))])
    ['bn.running_mean', 'bn.running_var', 'bn.num_batches_tracked']
    """
    return [(f"{name}." if name else "") + buffer for name, _ in layers for buffer in STAT_BUFFERS]


def warmup_steps(momentum: Optional[float], residual: float = WARMUP_RESIDUAL) -> int:
    """Forward passes after which the initial running variance weighs less than ``residual`` in the estimate.

    With momentum ``m`` the initial value keeps weight ``(1 - m) ** k`` after ``k`` batches. With ``None``
    (cumulative average) the first batch replaces it entirely; 10 batches then give a usable average.
    """
    if momentum is None:
        return 10
    if momentum <= 0.0:
        return 2**31 - 1  # the running statistics never move: nothing to judge
    if momentum >= 1.0:
        return 1
    return int(math.ceil(math.log(residual) / math.log(1.0 - momentum)))


def variance_summaries(running_vars: Sequence[Tensor], numels: Tensor,
                       segments: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """``(mean, max)`` over channels of each layer's running variance, as two ``[L]`` float32 tensors.

    A handful of kernels for all layers together (concatenate, segment sum, segment max), none per layer, no host
    sync. The mean comes from a sum, so a NaN or Inf anywhere in a layer shows up in its mean on every backend.
    ``segments`` (the layer index of every concatenated channel) can be passed in to save rebuilding it.

    Example::

        >>> mean, peak = variance_summaries([torch.tensor([1.0, 3.0]), torch.tensor([4.0])], torch.tensor([2.0, 1.0]))
        >>> mean.tolist(), peak.tolist()
        ([2.0, 4.0], [3.0, 4.0])
    """
    with torch.no_grad():
        flat = torch.cat([t.reshape(-1) for t in running_vars]).float()
        numels = numels.to(flat.device)
        if segments is None:
            segments = layer_segments([t.numel() for t in running_vars], flat.device)
        total = torch.zeros(len(running_vars), device=flat.device).index_add_(0, segments, flat)
        peak = torch.full((len(running_vars),), float("-inf"), device=flat.device)
        peak = peak.scatter_reduce_(0, segments, flat, "amax")
    return total / numels, peak


def layer_segments(sizes: Sequence[int], device: Any = None) -> Tensor:
    """The layer index of every channel once the layers' per-channel tensors are concatenated."""
    return torch.repeat_interleave(torch.arange(len(sizes), device=device),
                                   torch.tensor(list(sizes), device=device), output_size=int(sum(sizes)))


def effective_momentum(momentum: Tensor, tracked_after: Tensor) -> Tensor:
    """Per-layer update weight of the last batch: the momentum, or ``1 / num_batches_tracked`` where it is NaN (None)."""
    cumulative = 1.0 / tracked_after.clamp(min=1).to(momentum.dtype)
    return torch.where(torch.isnan(momentum), cumulative, momentum)


def batch_variance_mean(mean_before: Tensor, mean_after: Tensor, momentum: Tensor) -> Tensor:
    """Channel mean of the batch's (unbiased) variance, recovered from one running-variance update."""
    m = momentum.clamp(min=1e-12)
    return (mean_after - (1.0 - m) * mean_before) / m


def batch_reference(history: Tensor) -> tuple[Tensor, Tensor]:
    """``(upper quartile, count)`` per layer of the batch variances kept in ``history`` (``[N, L]``, NaN = none).

    Example::

        >>> history = torch.tensor([[1.0, float("nan")], [5000.0, 2.0], [1.0, float("nan")], [1.0, float("nan")],
        ...                         [1.0, float("nan")]])
        >>> reference, count = batch_reference(history)
        >>> reference.tolist(), count.tolist()
        ([1.0, 2.0], [5, 1])
    """
    if history.dim() == 2 and history.dtype == torch.float64 and history.device.type == "cpu" and history.shape[1] <= 64:
        # A few layers: the same quantile in plain floats costs a tenth of nanquantile's fixed overhead (every step
        # of the warm-up runs this).
        return _nanquantile_columns(history.tolist(), REFERENCE_QUANTILE)
    return torch.nanquantile(history, REFERENCE_QUANTILE, dim=0), (~torch.isnan(history)).sum(dim=0)


def _nanquantile_columns(rows: list[list[float]], q: float) -> tuple[Tensor, Tensor]:
    """``torch.nanquantile(rows, q, dim=0)`` (linear interpolation) and the non-NaN counts, column by column in
    float64, with torch's own interpolation formula (``torch.lerp``), so the result is the same to the bit."""
    quantiles, counts = [], []
    for column in zip(*rows):
        values = sorted(v for v in column if v == v)
        n = len(values)
        counts.append(n)
        if n == 0:
            quantiles.append(math.nan)
            continue
        rank = q * (n - 1)
        below = math.floor(rank)
        lo, hi, w = values[below], values[math.ceil(rank)], rank - below
        quantiles.append(lo + w * (hi - lo) if w < 0.5 else hi - (hi - lo) * (1 - w))
    return torch.tensor(quantiles, dtype=torch.float64), torch.tensor(counts, dtype=torch.int64)


def batch_ratio(mean_before: float, mean_after: float, momentum: float, floor: float) -> float:
    """:func:`batch_variance_mean` over the running estimate before it (at least ``floor``), for one layer in floats.

    Raises ``ZeroDivisionError`` for a momentum or floor of 0.

    >>> round(batch_ratio(1.0, 0.9 + 0.1 * 5000.0, 0.1, 1e-4), 6)
    5000.0
    """
    return (mean_after - (1.0 - momentum) * mean_before) / momentum / (mean_before if mean_before > floor else floor)


def screen(
    mean_before: Sequence[float],
    mean_after: Sequence[float],
    window_ref: Sequence[float],
    peak: Sequence[float],
    armed: Sequence[bool],
    floor: Sequence[float],
    momentum: Sequence[float],
    collapse_level: Sequence[float],
    *,
    jump_step: float = JUMP_STEP,
    jump_window: float = JUMP_WINDOW,
    batch_ratio_limit: float = BATCH_RATIO,
    collapse_drop: float = COLLAPSE_DROP,
    reference_low: Optional[Sequence[float]] = None,
) -> bool:
    """Might :func:`judge` fire on this step? A cheap superset of its alarm, on the host.

    The ratios of :func:`judge` without its bookkeeping masks (warm-up, exact update, finiteness), so it never
    misses a step the full verdict would flag; a NaN or Inf anywhere makes it True. Plain float arithmetic on one
    value per layer (cheaper than any tensor library on vectors this short): the monitor runs :func:`judge` only
    on the rare steps it flags. ``momentum`` is each layer's effective momentum (:func:`effective_momentum`);
    ``collapse_level`` is ``eps * COLLAPSE_EPS_FACTOR``. During warm-up, ``reference_low`` is each layer's lowest
    batch variance among those :func:`batch_reference` would take (NaN while fewer than ``REFERENCE_MIN`` are
    known): the quantile reference is never below it, so a batch within ``batch_ratio_limit`` of it cannot fire
    the warm-up form of the bad-batch test. Without it, that test is not screened (warmed-up layers only).

    Example::

        >>> args = dict(armed=[True], floor=[1e-4], momentum=[0.1], collapse_level=[1e-3])
        >>> screen([1.0], [1.05], [1.0], [1.2], **args), screen([1.0], [16.0], [1.0], [1.2], **args)
        (False, True)
    """
    lows = reference_low if reference_low is not None else [math.nan] * len(mean_after)
    # Rounding margins: `judge` computes the same ratios as tensors, in another order of operations.
    near = 1.0 - 1e-9
    try:
        for b, a, w, p, live, f, m, c, low in zip(mean_before, mean_after, window_ref, peak, armed, floor, momentum,
                                                 collapse_level, lows):
            d = b if b > f else f  # NaN falls through to the floor here, and stays in `a` and `b` below
            ratio = batch_ratio(b, a, m, f)
            # Written as "quiet" so that a NaN (every comparison False) counts as a possible alarm.
            quiet = (a / d < jump_step * near and a / (w if w > f else f) < jump_window * near
                     and ratio < batch_ratio_limit * near and b == b)
            if not quiet or (live and a <= min(p / collapse_drop / near, c)):
                return True
            if low == low and ratio * d / (low if low > f else f) >= batch_ratio_limit * near:
                return True
    except ZeroDivisionError:  # eps or momentum of 0: let the full verdict decide
        return True
    return False


def reference_low(history: Sequence[Sequence[float]], minimum: int = REFERENCE_MIN) -> list[float]:
    """Per layer, the lowest of the batch variances kept in ``history`` (rows of per-layer floats, NaN = none),
    or NaN where fewer than ``minimum`` are known: the floor of :func:`batch_reference`'s quantile, for
    :func:`screen`.

    >>> reference_low([[1.0, float("nan")], [3.0, 2.0]], minimum=2)
    [1.0, nan]
    """
    lows = []
    for column in zip(*history):
        known = [v for v in column if v == v]
        lows.append(min(known) if len(known) >= minimum else math.nan)
    return lows


def judge(
    mean_before: Tensor,
    mean_after: Tensor,
    window_ref: Tensor,
    peak: Tensor,
    momentum: Tensor,
    steps_tracked: Tensor,
    steps_this_step: Tensor,
    warmup: Tensor,
    eps: Tensor,
    reference: Optional[Tensor] = None,
    reference_count: Optional[Tensor] = None,
    *,
    jump_step: float = JUMP_STEP,
    jump_window: float = JUMP_WINDOW,
    batch_ratio_limit: float = BATCH_RATIO,
    collapse_drop: float = COLLAPSE_DROP,
) -> dict[str, Tensor]:
    """Per-layer verdicts and figures for one step, all as ``[L]`` tensors on the device (no host sync).

    Args:
        mean_before: channel mean of the running variance at the start of the step.
        mean_after: the same after the step's forward pass(es).
        window_ref: ``mean_after`` of ``WINDOW`` steps ago (or the oldest value kept).
        peak: the largest ``mean_after`` seen since warm-up (updated by the caller from ``mean_after``).
        momentum: each layer's momentum, NaN where it is None (cumulative average).
        steps_tracked: ``num_batches_tracked`` after the step.
        steps_this_step: how many forward passes updated the statistics during the step (0 in eval mode).
        warmup: each layer's :func:`warmup_steps`.
        eps: each layer's ``eps``.
        jump_step, jump_window, batch_ratio_limit, collapse_drop: the thresholds (the module's constants by default).
        reference, reference_count: :func:`batch_reference` of the batch variances of the previous steps; during
            warm-up the batch is judged against this quantile instead of the running estimate (omitted: not judged).

    Returns:
        ``jump``, ``window_jump``, ``batch_ratio`` (against the running estimate), ``batch_variance``,
        ``reference_ratio`` (against the quantile reference) (figures) and the bool verdicts ``fired_jump``,
        ``fired_window``, ``fired_batch`` (``fired_batch_early`` for its warm-up form), ``fired_collapse``,
        ``fired_nonfinite`` and ``alarm`` (any of them).

    Example::

        >>> t = lambda v: torch.tensor([float(v)])
        >>> out = judge(t(1), t(0.9 + 0.1 * 1e6), t(1), t(1), t(0.1), t(100), t(1), t(44), t(1e-5))
        >>> bool(out["fired_jump"]), bool(out["fired_batch"]), bool(out["fired_collapse"])
        (True, True, False)
        >>> out = judge(t(1), t(1.1), t(1), t(1.2), t(0.1), t(100), t(1), t(44), t(1e-5))
        >>> bool(out["alarm"])
        False
    """
    floor = eps * FLOOR_EPS_FACTOR
    updated = steps_this_step >= 1
    warm = updated & (steps_tracked >= warmup)
    warm_window = updated & (steps_tracked >= warmup + WINDOW)
    # Channel means only: the max over channels of a small batch's variances is noisy (with momentum near 1 and
    # batches of two it can move 100x on its own), and a single channel that really blows up lifts the mean too.
    jump = mean_after / torch.maximum(mean_before, floor)
    window_jump = mean_after / torch.maximum(window_ref, floor)
    m = effective_momentum(momentum, steps_tracked)
    batch_mean = batch_variance_mean(mean_before, mean_after, m)
    batch_ratio = batch_mean / torch.maximum(mean_before, floor)
    finite = torch.isfinite(mean_after) & torch.isfinite(mean_before)
    fired_nonfinite = updated & ~torch.isfinite(mean_after) & torch.isfinite(mean_before)
    fired_jump = warm & finite & (jump >= jump_step)
    fired_window = warm_window & finite & (window_jump >= jump_window)
    # The batch variance is exact only when the layer ran exactly one forward pass in the step.
    exact = finite & (steps_this_step == 1)
    fired_batch_late = warm & exact & (batch_ratio >= batch_ratio_limit)
    if reference is None or reference_count is None:
        reference, reference_count = torch.full_like(mean_after, float("nan")), torch.zeros_like(mean_after)
    # A reference at noise level (a layer whose input starts at zero, as after a zero-initialized projection) is
    # no reference: growth from nothing is not a bad batch.
    known = (reference_count >= REFERENCE_MIN) & torch.isfinite(reference) & (reference > floor)
    reference_ratio = batch_mean / torch.maximum(reference, floor)
    fired_batch_early = updated & ~warm & exact & known & (reference_ratio >= batch_ratio_limit)
    fired_batch = fired_batch_late | fired_batch_early
    fired_collapse = (
        warm & finite & (mean_after * collapse_drop <= peak) & (mean_after <= eps * COLLAPSE_EPS_FACTOR)
    )
    alarm = fired_nonfinite | fired_jump | fired_window | fired_batch | fired_collapse
    return {
        "jump": jump,
        "window_jump": window_jump,
        "batch_ratio": batch_ratio,
        "batch_variance": batch_mean,
        "reference_ratio": reference_ratio,
        "fired_jump": fired_jump,
        "fired_window": fired_window,
        "fired_batch": fired_batch,
        "fired_batch_early": fired_batch_early,
        "fired_collapse": fired_collapse,
        "fired_nonfinite": fired_nonfinite,
        "alarm": alarm,
    }

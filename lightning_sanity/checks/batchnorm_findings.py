"""The words of a ``batchnorm-variance`` finding: message, advice and figures for each way a layer fires (a jump,
a growing window, a bad-luck batch, a collapse, non-finite statistics), from the step's host figures.

Pure functions, no Trainer: :class:`~lightning_sanity.callbacks.batchnorm.BatchNormMonitor` reports what they
return. The thresholds and the judgement are in :mod:`lightning_sanity.checks.batchnorm`.

Example::

    >>> json_number(2.5), json_number(float("inf"))
    (2.5, 'inf')
"""

from __future__ import annotations

import math
from typing import Any

from lightning_sanity.checks import batchnorm as bn
from lightning_sanity.findings import Severity

_ADVICE_BATCH = (
    "Open the replay bundle's batch (`lightning_sanity.replays.load_bundle(path)['batch']`) and look for outliers, "
    "unscaled or corrupt samples; normalize or clip the inputs, shuffle so that similar samples do not come "
    "together, use larger batches, or lower this layer's BatchNorm momentum so one batch moves the estimate less."
)
_ADVICE_WINDOW = (
    "Activations before this layer are growing fast: lower the learning rate, add weight decay or gradient "
    "clipping, and look at the weight-growth and exploding-gradient checks for the same steps."
)
_ADVICE_COLLAPSE = (
    "The layer's input has become nearly constant: look for dead ReLUs before it (dead-activations), weights "
    "decayed to zero, or an input that no longer varies; evaluation with these statistics divides by about "
    "sqrt(eps) and amplifies noise."
)
_ADVICE_NONFINITE = (
    "Replay the bundle to find the batch and module that produced it; a batch with Inf or huge values, or an "
    "fp16 overflow before this layer, are the usual causes."
)


def batchnorm_finding(name: str, kind: str, i: int, host: dict[str, list], capture: Any, module: Any, rank: int,
                      thresholds: dict[str, float]) -> tuple[Severity, str, str, dict[str, Any]]:
    """``(severity, message, advice, data)`` of the finding on layer ``name`` (index ``i`` in ``host``'s lists)
    that fired by ``kind``; ``capture`` has the step's ``epoch``, ``batch_idx`` and ``global_step``, ``module`` the
    layer's ``momentum`` and ``eps``, ``thresholds`` the check's thresholds by name."""
    when = f"at epoch {capture.epoch}, batch {capture.batch_idx} (global step {capture.global_step})"
    before, after = host["mean_before"][i], host["mean_after"][i]
    ratio, jump = host["batch_ratio"][i], host["jump"][i]
    data: dict[str, Any] = {
        "criterion": kind,
        "running_var_before": json_number(before),
        "running_var_after": json_number(after),
        "running_var_max": json_number(host["max_after"][i]),
        "batch_ratio": json_number(ratio),
        "jump": json_number(jump),
        "momentum": module.momentum,
        "eps": module.eps,
        "rank": rank,
    }
    severity = Severity.WARNING
    if kind == "nonfinite":
        severity = Severity.ERROR
        message = (f"The running variance of BatchNorm layer `{name}` became non-finite ({after}) {when}; "
                   "evaluation with these statistics gives NaN or zero outputs.")
        advice = _ADVICE_NONFINITE
    elif kind == "batch" and host["fired_batch_early"][i]:
        reference, variance = host["reference"][i], host["batch_variance"][i]
        ratio = host["reference_ratio"][i]
        data.update(criterion="batch", threshold=thresholds["batch_ratio"], batch_variance=json_number(variance),
                    reference_variance=json_number(reference), reference_ratio=json_number(ratio),
                    reference_batches=bn.REFERENCE_BATCHES, batch_ratio=json_number(ratio))
        message = (f"Batch {capture.batch_idx} of epoch {capture.epoch} (global step {capture.global_step}) had "
                   f"{ratio:.3g}x the variance of the batches before it at BatchNorm layer `{name}` ({variance:.3g} "
                   f"against an upper quartile of {reference:.3g} over the last {bn.REFERENCE_BATCHES} steps, "
                   "channel means), "
                   f"and its running variance went from {before:.3g} to {after:.3g} in that one step.")
        advice = _ADVICE_BATCH
    elif kind in ("jump", "batch"):
        data["threshold"] = thresholds["jump" if kind == "jump" else "batch_ratio"]
        message = (f"Batch {capture.batch_idx} of epoch {capture.epoch} (global step {capture.global_step}) had "
                   f"{ratio:.3g}x the variance that BatchNorm layer `{name}` had estimated, and its running "
                   f"variance went from {before:.3g} to {after:.3g} (x{jump:.3g}) in that one step (channel means).")
        advice = _ADVICE_BATCH
    elif kind == "window":
        ref = host["window_ref"][i]
        data.update(threshold=thresholds["window"], window=bn.WINDOW, window_ratio=json_number(host["window_jump"][i]),
                    running_var_window_start=json_number(ref))
        message = (f"The running variance of BatchNorm layer `{name}` grew {host['window_jump'][i]:.3g}x within "
                   f"{bn.WINDOW} steps, from {ref:.3g} to {after:.3g} (channel means), up to {when}.")
        advice = _ADVICE_WINDOW
    else:
        peak = host["peak"][i]
        data.update(peak=json_number(peak), threshold=thresholds["collapse"])
        message = (f"The running variance of BatchNorm layer `{name}` collapsed to {after:.3g} (channel mean), "
                   f"{peak / max(after, 1e-38):.3g}x below its peak of {peak:.3g} and under 100x its eps "
                   f"({module.eps:g}), {when}.")
        advice = _ADVICE_COLLAPSE
    return severity, message, advice, data


def json_number(value: float) -> Any:
    """A figure for JSON: the float itself, or its text when NaN or infinite."""
    return value if math.isfinite(value) else str(value)

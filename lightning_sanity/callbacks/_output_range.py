"""``dead-activations`` glue for a bounded activation that is the model's output (a ReLU after the last Linear of
a regression head): are the regression targets within its reach?

Used by :class:`~lightning_sanity.callbacks.activations.ActivationMonitor`: its hooks say which activation ran
last, after every parametered layer; this watch sums the moments of the batch's targets against that activation's
range on the device at each measured step, and judges once at the end of fit (one host read).
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn

from lightning_sanity.batch import split_batch
from lightning_sanity.checks import output_range as R
from lightning_sanity.checks.losses import REGRESSION
from lightning_sanity.findings import Severity


class OutputRangeWatch:
    """The output activation's range against the targets, summed over the measured steps."""

    def __init__(self) -> None:
        self.last: Optional[tuple[str, nn.Module, int, torch.Tensor]] = None  # the latest activation call
        self._moments: Optional[torch.Tensor] = None
        self._where: Optional[tuple[str, nn.Module, tuple[float, float]]] = None

    def seen(self, key: str, module: nn.Module, order: int, output: Any) -> None:
        """From an activation hook: this activation ran, at this position in the forward's order."""
        self.last = (key, module, order, output) if isinstance(output, torch.Tensor) else None

    def step_end(self, facts: dict, last_layer_order: int, batch: Any) -> None:
        """At the end of a measured step: if an activation was the model's last operation, sum its targets."""
        last, self.last = self.last, None
        if last is None or facts.get("loss_kind") not in REGRESSION or not facts.get("loss_target_is_batch_target"):
            return
        key, module, order, output = last
        bounds = R.output_range(module)
        if order < last_layer_order or bounds is None:
            return  # a parametered layer ran after it: not the output
        target = split_batch(batch)[1]
        if not isinstance(target, torch.Tensor) or not target.is_floating_point() or target.numel() != output.numel():
            return
        with torch.no_grad():
            moments = R.unreachable_moments(target, *bounds)
        self._moments = moments if self._moments is None else self._moments + moments
        self._where = (key, module, bounds)

    def judge(self, callback: Any, trainer: Any) -> None:
        if self._moments is None or self._where is None:
            return
        share = R.unreachable_share(self._moments)
        threshold = R.UNREACHABLE_SHARE
        if not math.isfinite(share) or share < threshold:
            return
        key, module, (low, high) = self._where
        span = f"[{low:g}, inf)" if math.isinf(high) else f"[{low:g}, {high:g}]"
        callback.report(
            trainer, "dead-activations", Severity.WARNING,
            f"The model's output is `{key}` ({type(module).__name__}), so every prediction lies in {span}, but "
            f"{share:.0%} of the regression targets' variance lies outside that range: those targets can never be "
            "reached, the loss cannot fall below that share of the best constant's, and every sample whose "
            "activation is clamped passes no gradient through the output.",
            "Remove the activation after the last layer of a regression head (its outputs must cover the targets' "
            "range), or transform the targets into the activation's range (and back for predictions).",
            where=key.split("#")[0], at_step=False, key=f"{key}:output-range",
            data={"kind": "output-range", "activation": type(module).__name__, "unreachable_share": share,
                  "threshold": threshold, "range": [low, high if math.isfinite(high) else None]},
        )

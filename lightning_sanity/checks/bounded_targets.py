"""loss-input: a regression loss comparing a squashed prediction (sigmoid in (0, 1), tanh in (-1, 1)) with targets
that lie largely outside that range. The prediction can never reach them: the least squared error an output
confined to the range leaves (every prediction at the nearest reachable value) is a floor under the loss, and the
units pushed against the bound saturate, so their gradient vanishes.

The figure judged is the one :mod:`lightning_sanity.checks.output_range` uses for a bounded output layer: that
floor as a share of the targets' variance (the best constant's squared error), against
:data:`~lightning_sanity.checks.output_range.UNREACHABLE_SHARE`. Targets within the range (pixels in [0, 1] with a
sigmoid) give 0; standardised targets with tanh leave about 0.15 of the variance out of reach (the tails beyond one
standard deviation) and stay below it; pixels 0..16 with a sigmoid leave more than the whole variance.

Example::

    >>> import torch
    >>> found = unreachable_targets(torch.tensor([0.0, 4.0, 8.0, 16.0]), (0.0, 1.0))
    >>> found["outside"], round(found["unreachable_share"], 2)
    (0.75, 2.02)
    >>> unreachable_targets(torch.tensor([0.0, 0.3, 1.0]), (0.0, 1.0)) is None
    True
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from lightning_sanity.checks.output_range import UNREACHABLE_SHARE, unreachable_moments, unreachable_share


def unreachable_targets(target: torch.Tensor, bounds: tuple[float, float],
                        threshold: float = UNREACHABLE_SHARE) -> Optional[dict[str, Any]]:
    """The figures when the targets out of ``bounds`` leave at least ``threshold`` of their variance out of reach;
    None otherwise (or for non-float or non-finite targets)."""
    if not isinstance(target, torch.Tensor) or not target.is_floating_point() or target.numel() < 2:
        return None
    y = target.detach()
    if not bool(torch.isfinite(y).all()):
        return None
    low, high = bounds
    share = unreachable_share(unreachable_moments(y, low, high))
    if not math.isfinite(share) or share < threshold:
        return None
    outside = float(((y < low) | (y > high)).double().mean())
    return {"outside": outside, "unreachable_share": share, "range": [low, high], "threshold": threshold,
            "target_min": float(y.min()), "target_max": float(y.max())}


def unreachable_message(name: str, activation: str, found: dict[str, Any]) -> tuple[str, str]:
    """The finding's message and advice."""
    low, high = found["range"]
    message = (f"{name} compares the output of a {activation} (always within ({low:g}, {high:g})) with targets from "
               f"{found['target_min']:.3g} to {found['target_max']:.3g}: {found['outside']:.0%} of them lie outside "
               f"the range, and the error on them can never be removed ({found['unreachable_share']:.3g}x the "
               "targets' variance, the best constant's squared error). The loss has a floor above what a constant "
               "could reach, and the output units pushed against the bound saturate, so their gradient vanishes.")
    advice = (f"Scale the targets into the {activation}'s range (pixels 0..255 or 0..16: divide by the maximum; "
              "standardised targets: drop the squashing) and scale predictions back, or remove the final "
              f"{activation} so the output can cover the targets.")
    return message, advice

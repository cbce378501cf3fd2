"""A gradient explosion at the very first optimizer step, for ``exploding-gradient``.

A spike is judged against the steps before it (``N.gradient_spike``): at least 1000x their running median and 10x
their level. The first step has no steps before it, and a large first gradient is normal (the loss is highest at
initialisation), so its norm alone proves nothing. What makes it an explosion is what it did: an RNN whose
recurrent weights have a spectral radius above 1 backpropagates a gradient of 6e7 at step 0, SGD moves the weights
by 250,000 times their own norm, and the saturated network never gets a gradient again.

So the first step is a spike when both hold:

- its global gradient norm is at least ``factor`` (the spike threshold, 1000) times the median of the whole run;
- its update moved the weights by at least ``too_large`` (update-ratio's threshold: an update as large as the
  weights themselves) times their norm, all measured layers together (one zero-initialised layer alone, whose
  own ratio is unbounded, does not count).

Example::

    >>> import torch
    >>> first_step_spike(6e7, 1.3, torch.tensor([3.6e13, 1.0]), torch.tensor([590.0, 1.4]))["update_ratio"] > 1e5
    True
    >>> first_step_spike(6e7, 1.3, torch.tensor([1e-4, 1e-4]), torch.tensor([590.0, 1.4])) is None  # weights kept
    True
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from lightning_sanity.checks.norms import SPIKE_FACTOR, UPDATE_TOO_LARGE


def first_step_spike(value: float, run_median: float, update_sq: torch.Tensor, weight_sq: torch.Tensor,
                     factor: float = SPIKE_FACTOR, too_large: float = UPDATE_TOO_LARGE) -> Optional[dict[str, Any]]:
    """Figures when the first step's gradient norm ``value`` is a spike by what its update did, else None.

    ``update_sq`` and ``weight_sq`` are that step's squared update and weight norms of the measured layers.
    """
    if not (run_median > 0 and math.isfinite(value) and value >= factor * run_median):
        return None
    weight = float(weight_sq.double().sum())
    update = float(update_sq.double().sum())
    if not (weight > 0 and math.isfinite(update)):
        return None
    ratio = math.sqrt(update / weight)
    if ratio < too_large:
        return None
    return {"update_ratio": ratio, "factor": value / run_median}

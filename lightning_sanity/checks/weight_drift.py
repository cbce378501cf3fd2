"""Weight norms that grow at a rate that does not slow down, for ``weight-growth``.

Healthy weights grow mostly early and then settle: the first updates are coherent, later ones mostly noise, so
the norm follows a curve like ``w0 + c * sqrt(t)`` or a saturating one (about 2-3x over the first epochs with Adam
on small default-initialised layers). A loss that can be lowered by scaling the weights up (a regulariser with the
wrong sign, an unbounded objective, logits pushed to infinity) pushes them outward at every step: with Adam each
parameter moves by about ``lr`` per step, so the norm grows linearly, without bound, and a short run shows it as
a 7-10x growth that a fixed "10x" bar can miss.

So a layer also grows without bound when, over the run seen:

- its norm grew at least :data:`STEADY_FACTOR` x (beyond the 2-3x a healthy layer grows early), and
- it grew in the second half of the run at least :data:`SECOND_HALF_SHARE` times as much as in the first half:
  a linear drift gives 1, a ``sqrt(t)`` growth from its start 0.41, a saturating one less.

Example::

    >>> import torch
    >>> t = torch.arange(200, dtype=torch.float64).unsqueeze(1)
    >>> linear, settling = 2 + 0.1 * t, 2 + 1.5 * t.sqrt()
    >>> [(layer, round(f, 1)) for layer, f in steady_growth(torch.cat([linear, settling], 1) ** 2, [64, 64])]
    [(0, 11.0)]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lightning_sanity.checks.norms import MIN_STEPS, WEIGHT_MIN_START_RMS

#: Growth over the run at least this (the 2-3x of healthy early growth, and then some).
STEADY_FACTOR = 3.0
#: Growth in the second half at least this share of the first half's: midway between a sqrt(t) growth (0.41)
#: and a constant rate (1.0).
SECOND_HALF_SHARE = 0.7


def steady_growth(weight_sq: torch.Tensor, numels: Sequence[int], min_steps: int = MIN_STEPS * 2
                  ) -> list[tuple[int, float]]:
    """``(layer, growth factor since the first step)`` of each layer whose weight norm grows at a steady rate.

    ``weight_sq`` is the history of squared weight norms (steps x layers), ``numels`` each layer's size.
    """
    rows = weight_sq.shape[0]
    if rows < min_steps:
        return []
    norms = weight_sq.double().sqrt()
    first, middle, last = norms[0], norms[rows // 2], norms[-1]
    start_rms = first / torch.tensor(list(numels), dtype=norms.dtype).clamp(min=1).sqrt()
    ok = torch.isfinite(last) & torch.isfinite(middle) & (start_rms >= WEIGHT_MIN_START_RMS)
    steady = ok & (last >= STEADY_FACTOR * first) & (last - middle >= SECOND_HALF_SHARE * (middle - first))
    return [(layer, (last[layer] / first[layer]).item()) for layer in steady.nonzero().flatten().tolist()]

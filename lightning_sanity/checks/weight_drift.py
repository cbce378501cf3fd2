"""Weight norms that grow at a rate that does not slow down, for ``weight-growth``.

Healthy weights grow mostly early and then settle: the first updates are coherent, later ones mostly noise, so
the norm follows a curve like ``w0 + c * sqrt(t)`` or a saturating one (about 2-3x over the first epochs with Adam
on small default-initialised layers). A loss that can be lowered by scaling the weights up (a regulariser with the
wrong sign, an unbounded objective, logits pushed to infinity) pushes them outward at every step: with Adam each
parameter moves by about ``lr`` per step, so the norm grows linearly, without bound, and a short run shows it as
a 7-10x growth that a fixed "10x" bar can miss.

A single layer doing so is not yet a bug: an output layer whose logits sharpen (cross-entropy on data it already
separates rewards a larger scale) grows steadily 3-7x in healthy short runs while the layers below it settle
(measured on six healthy scripts of the zoo: the whole model grew at most 2.4x, decelerating). A term that rewards
large weights reaches every layer it penalises, so the judgement is on the whole model's weight norm:

- it grew at least :data:`STEADY_FACTOR` x over the run (beyond the 2-3x a healthy model grows early), and
- it grew in the second half of the run at least :data:`SECOND_HALF_SHARE` times as much as in the first half:
  a linear drift gives 1, a ``sqrt(t)`` growth from its start 0.41, a saturating one less.

The layers named are those that grew steadily themselves (or the one that grew most).

The 10x rule of :func:`~lightning_sanity.checks.norms.growing_layers` asks only that a layer be still rising at the
end. A layer that grew 10x gradually and is slowing down is settling, not diverging (:func:`settling_layers`): the
factors of a product (a GMF tower's two small embeddings and the output weights over their product) grow together
at Adam's ``lr`` per step until the product reaches the scale of the logits, then slow, and a logistic loss on data
it separates sharpens its output layer at a log rate. It settles when it grew in the second half of the run less
than :data:`SECOND_HALF_SHARE` times as much as in the first half, and less than :data:`EARLY_SHARE` of its growth
came in the first tenth of the run: a learning rate far too high blows a layer up in its first steps, and a creep
after that is no sign of settling.

Example::

    >>> import torch
    >>> t = torch.arange(200, dtype=torch.float64).unsqueeze(1)
    >>> linear = 2 + 0.1 * t
    >>> [(layer, round(f, 1)) for layer, f in steady_growth(torch.cat([linear, linear], 1) ** 2, [64, 64])]
    [(0, 11.0), (1, 11.0)]
    >>> steady_growth(torch.cat([linear, 20 + 0 * t], 1) ** 2, [64, 640])   # one layer alone, the model settled
    []
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch

from lightning_sanity.checks.norms import MIN_STEPS, WEIGHT_MIN_START_RMS, row_at

#: Growth over the run at least this (the 2-3x of healthy early growth, and then some).
STEADY_FACTOR = 3.0
#: Growth in the second half at least this share of the first half's: midway between a sqrt(t) growth (0.41)
#: and a constant rate (1.0).
SECOND_HALF_SHARE = 0.7
#: Share of a layer's growth in the first tenth of the run above which the growth is a blow-up, not a settling curve:
#: a ``sqrt(t)`` growth makes 32% of its growth there, a linear one 10%.
EARLY_SHARE = 0.5


def steady_growth(weight_sq: torch.Tensor, numels: Sequence[int], min_steps: int = MIN_STEPS * 2,
                  steps: Optional[Sequence[int]] = None) -> list[tuple[int, float]]:
    """``(layer, growth factor since the first step)`` of the layers of a model whose weight norm grows at a steady
    rate, largest growth first; empty when the whole model's norm does not.

    ``weight_sq`` is the history of squared weight norms (steps x layers), ``numels`` each layer's size, ``steps``
    each row's global step (the middle of the run is found by step: strided rows are not evenly spaced).
    """
    rows = weight_sq.shape[0]
    if rows < min_steps:
        return []
    weight_sq = weight_sq.double()
    start_rms = (weight_sq[0] / torch.tensor(list(numels), dtype=weight_sq.dtype).clamp(min=1)).sqrt()
    ok = torch.isfinite(weight_sq).all(0) & (start_rms >= WEIGHT_MIN_START_RMS)
    if not bool(ok.any()):
        return []
    whole = weight_sq[:, ok].sum(1).sqrt()
    middle = row_at(rows // 2, steps)
    if not _steady(whole[0], whole[middle], whole[-1]):
        return []
    norms = weight_sq.sqrt()
    factors = norms[-1] / norms[0]
    steady = ok & _steady(norms[0], norms[middle], norms[-1])
    layers = steady.nonzero().flatten().tolist() or [int(torch.where(ok, factors, torch.zeros_like(factors)).argmax())]
    return sorted(((layer, factors[layer].item()) for layer in layers), key=lambda item: -item[1])


def _steady(first: torch.Tensor, middle: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    return (last >= STEADY_FACTOR * first) & _keeps_pace(first, middle, last)


def _keeps_pace(first: torch.Tensor, middle: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    """Grew in the second half at least :data:`SECOND_HALF_SHARE` times as much as in the first."""
    return last - middle >= SECOND_HALF_SHARE * (middle - first)


def settling_layers(weight_sq: torch.Tensor, layers: Sequence[int], steps: Optional[Sequence[int]] = None) -> set[int]:
    """The ``layers`` whose weight norm grew gradually and is slowing down (see the module docstring).

    >>> t = torch.arange(1, 201, dtype=torch.float64).unsqueeze(1)
    >>> w = torch.cat([1 + t.sqrt(), 1 + 0.1 * t, 1 + 100 * (t > 2) + 0.1 * t], 1) ** 2
    >>> sorted(settling_layers(w, [0, 1, 2]))
    [0]
    """
    rows = weight_sq.shape[0]
    norms = weight_sq.double().sqrt()
    first, early = norms[0], norms[row_at(rows // 10, steps)]
    middle, last = norms[row_at(rows // 2, steps)], norms[-1]
    grew = last - first
    slowing = (middle > first) & ~_keeps_pace(first, middle, last)
    gradual = early - first < EARLY_SHARE * grew
    return {layer for layer in layers if bool(slowing[layer] & gradual[layer] & (grew[layer] > 0))}

"""Masked modelling that reads its hidden values: the pure part of ``target-leakage``'s masked-input test.

A masked model (MAE, masked frames, patches, pixels or features on floats) is given the input ``x`` and a boolean
``mask`` over some of its axes and scored on ``x``'s values at the hidden positions. It must not see them: its
output at those positions does not change at all (up to float round-off) when only the hidden values change. A
residual from the unmasked input (``x + head(h)``), a mask applied after the encoder or the original input passed
on instead of the masked one make the output there follow the hidden values about one for one.

Example::

    >>> import torch
    >>> x, mask = torch.randn(2, 3, 5), torch.tensor([[True, False] * 2 + [True]] * 2)  # (B, F, T), (B, T)
    >>> mask_axes(tuple(x.shape), tuple(mask.shape))
    [(0, 2)]
    >>> found = scored_selection(x, mask, [x.transpose(1, 2)[mask]])
    >>> found[0], bool(found[1].equal(mask))
    ((0, 2), True)
"""

from __future__ import annotations

from itertools import combinations
from typing import Optional

import torch

from lightning_sanity.checks import leakage as L

ADVICE = ("Let nothing of the hidden values reach the output: take a residual/skip from the masked input (the one "
          "the encoder sees), not from the original; apply the mask before the encoder; pass the masked input on, "
          "not the original; and score only positions the model cannot see.")


def mask_axes(shape: tuple[int, ...], mask_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The ways a mask of ``mask_shape`` lies over an input of ``shape``: increasing axes of the input, the batch
    axis first, whose sizes are the mask's (``(B, T)`` over ``(B, F, T)``: ``(0, 2)``)."""
    if not mask_shape or len(mask_shape) > len(shape) or mask_shape[0] != shape[0]:
        return []
    rest = range(1, len(shape))
    return [(0, *axes) for axes in combinations(rest, len(mask_shape) - 1)
            if tuple(shape[a] for a in axes) == tuple(mask_shape[1:])]


def at_mask(t: torch.Tensor, axes: tuple[int, ...], mask: torch.Tensor) -> torch.Tensor:
    """``t``'s values where ``mask`` (over ``t``'s ``axes``) is True: ``(hidden positions, other axes...)``."""
    order = [*axes, *(d for d in range(t.dim()) if d not in axes)]
    return t.permute(order)[mask]


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same values in the same order, or in another order of the non-mask axes (compared sorted)."""
    if a.numel() != b.numel() or a.numel() < 2:
        return False
    a, b = a.detach().reshape(-1).double(), b.detach().reshape(-1).double()
    return torch.equal(a, b) or torch.equal(a.sort().values, b.sort().values)


def scored_selection(x: torch.Tensor, mask: torch.Tensor,
                     targets: list[torch.Tensor]) -> Optional[tuple[tuple[int, ...], torch.Tensor]]:
    """``(axes, scored)`` when a loss target is ``x``'s values at ``mask`` (or at ``~mask``: a mask of the visible
    positions) over some axes of ``x``; ``scored`` is that mask. None when no target is, when the mask hides all
    or nothing, or when the unscored values are one constant (or all NaN): a padding mask (the loss is on the real
    positions, which a padded autoencoder reads by design), not a masked-modelling one."""
    if mask.dtype != torch.bool or not x.is_floating_point() or x.dim() < 2:
        return None
    for axes in mask_axes(tuple(x.shape), tuple(mask.shape)):
        for scored in (mask, ~mask):
            hidden = int(scored.sum())
            if hidden == 0 or hidden == scored.numel():
                continue
            values = at_mask(x, axes, scored)
            if not any(isinstance(t, torch.Tensor) and t.device == x.device and _same_values(values, t)
                       for t in targets):
                continue
            unscored = at_mask(x, axes, ~scored).detach()
            if unscored.numel() and (bool((unscored == unscored.reshape(-1)[0]).all())
                                     or not bool(torch.isfinite(unscored).any())):
                return None
            return axes, scored
    return None


def perturb_at(x: torch.Tensor, axes: tuple[int, ...], scored: torch.Tensor,
               generator: torch.Generator) -> torch.Tensor:
    """A copy of ``x`` whose values at the ``scored`` positions all move by about one standard deviation of ``x``
    (as :func:`~lightning_sanity.checks.leakage.perturb_after`); the others unchanged. Draws from ``generator``."""
    everywhere = L.perturb_after(x, -1, 0, generator)  # every position changed, the same noise rule
    shape = [1] * x.dim()
    for axis in axes:
        shape[axis] = x.shape[axis]
    return torch.where(scored.reshape(shape), everywhere, x)


def hidden_change(base: torch.Tensor, other: torch.Tensor, axes: tuple[int, ...], scored: torch.Tensor,
                  half: bool = False) -> tuple[float, float, bool]:
    """``(largest change, output scale, moved)`` of two outputs at the ``scored`` positions (the mask over the
    outputs' ``axes``); ``moved`` when the change is more than float round-off at the output's scale
    (:func:`~lightning_sanity.checks.leakage.depends`: a model that cannot see them gives identical values).

    >>> import torch
    >>> out = torch.randn(2, 4)
    >>> scored = torch.tensor([[True, False, True, False]] * 2)
    >>> hidden_change(out, out.clone(), (0, 1), scored)[2], hidden_change(out, out + 1, (0, 1), scored)[2]
    (False, True)
    """
    a, b = at_mask(base, axes, scored).float(), at_mask(other, axes, scored).float()
    finite = torch.isfinite(a) & torch.isfinite(b)
    if not bool(finite.all()) and bool((torch.isfinite(a) != torch.isfinite(b)).any()):
        return float("inf"), 0.0, True  # a value that turns NaN/Inf only when the hidden values change
    diff = torch.where(finite, (a - b).abs(), torch.zeros_like(a))
    change = float(diff.max()) if diff.numel() else 0.0
    base_all = base.float()
    scale = float(torch.where(torch.isfinite(base_all), base_all.abs(), torch.zeros_like(base_all)).max())
    return change, scale, L.depends(change, scale, half)

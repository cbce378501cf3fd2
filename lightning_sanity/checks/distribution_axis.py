"""Which axis of a ``kl_div`` target holds the distributions, and what ``reduction="batchmean"`` counts.

``kl_div`` is element-wise: it does not know which axis the user normalised. Its best constant and its uniform
reference are sums over a distribution, so the baseline needs that axis. A target whose rows sum to 1 along one
axis says where its distributions are (``softmax(t, dim=-1)`` of a ``(B, T, V)`` teacher: the last axis). When the
target is a distribution along no axis of a tensor with three or more dimensions, the axis is unknown and so is
the baseline.

``reduction="batchmean"`` divides the sum by ``input.size(0)`` only: over ``(B, T, V)`` it is a per-sequence sum,
``T`` distributions per batch element, and the expected value per distribution scales by ``T``
(:func:`rows_per_batch_element`).

Example::

    >>> import torch
    >>> t = torch.softmax(torch.randn(2, 5, 3), dim=-1)
    >>> distribution_axis(t), distribution_axis(torch.softmax(torch.randn(2, 5, 3), dim=1))
    (2, 1)
    >>> rows_per_batch_element(t, 2)
    5.0
"""

from __future__ import annotations

from typing import Optional

import torch


def _sums_to_one(p: torch.Tensor, axis: int) -> bool:
    sums = p.sum(axis)
    return bool(((sums - 1).abs() <= 1e-3 * max(1.0, p.shape[axis] ** 0.5)).all())


def distribution_axis(target: torch.Tensor, log_target: bool = False) -> Optional[int]:
    """The axis of ``target`` (probabilities, or log-probabilities with ``log_target``) that holds distributions.

    0 for a 1-D target, 1 for a 2-D one (rows are samples). From three dimensions on: the last axis when the target
    sums to 1 along it, else the one other axis (not the batch axis 0) along which it does; None when none or
    several do (the axis, and so the baseline, is unknown).
    """
    if target.dim() <= 1:
        return 0
    if target.dim() == 2:
        return 1
    p = target.detach().double()
    p = p.exp() if log_target else p
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        return None
    last = p.dim() - 1
    if _sums_to_one(p, last):
        return last
    axes = [a for a in range(1, last) if _sums_to_one(p, a)]
    return axes[0] if len(axes) == 1 else None


def distribution_rows(target: torch.Tensor, axis: int) -> torch.Tensor:
    """``target`` as ``(rows, C)`` with the distribution axis last."""
    t = target.detach()
    if t.dim() <= 1:
        return t.double().reshape(1, -1)
    return t.movedim(axis, -1).reshape(-1, t.shape[axis]).double()


def rows_per_batch_element(target: torch.Tensor, axis: int) -> float:
    """How many distributions ``reduction="batchmean"`` sums per unit of ``input.size(0)``: 1 for ``(B, C)``,
    ``T`` for ``(B, T, V)``, ``1 / C`` for an unbatched ``(C,)``."""
    if target.numel() == 0:
        return 0.0
    return target.numel() / (target.shape[axis] * target.shape[0])

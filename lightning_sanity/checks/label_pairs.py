"""Two feature columns that give a regression target away together: ``target = a * x_i + b * x_j + c`` exactly on
every distinct row (a "momentum" feature taken as ``y[t + 1] - y[t]`` beside the lag ``y[t]``; a total beside one
of its parts). One column alone is :func:`lightning_sanity.checks.leakage.label_columns`' ``affine``.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> lags = torch.randn(64, 6, generator=g)
    >>> target = lags[:, -1] + 0.3 * torch.randn(64, generator=g)
    >>> pair_columns(lags, target) is None
    True
    >>> pair_columns(torch.cat([lags, (target - lags[:, -1])[:, None]], 1), target)
    (5, 6, 0.0)
"""

from __future__ import annotations

from typing import Optional

import torch

#: ``1 - R^2`` of the two-column fit below which the target is their exact affine function: the bar a single
#: affine column meets (correlation above ``1 - 1e-6``); float32 rounding of an exact relation leaves about 1e-13.
EXACT = 2e-6
#: Distinct rows needed: a three-parameter fit is exact on three rows, and on sixteen noisy ones never by chance.
MIN_ROWS = 16
#: Columns scanned at most: the guard fits every column on every pair of the others (columns ** 3 figures, 2 MB).
MAX_COLUMNS = 64


def pair_columns(x: torch.Tensor, y: torch.Tensor) -> Optional[tuple[int, int, float]]:
    """``(i, j, 1 - R^2)`` for the first pair of columns of ``x`` (``(N, F)``) whose affine fit gives the float
    target ``y`` exactly, or None.

    Not judged (None) when a column of the pair is held in such a relation among the inputs themselves (a
    noiseless sine's windows), with fewer than four columns (``y = x_0 + x_1`` is a task, not a leak), or on fewer
    than ``MIN_ROWS`` distinct rows.
    """
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or not 4 <= x.shape[1] <= MAX_COLUMNS:
        return None
    rows = torch.unique(torch.cat([x.detach().double().cpu(), y.detach().double().cpu()[:, None]], 1), dim=0)
    if rows.shape[0] < MIN_ROWS or not bool(torch.isfinite(rows).all()):
        return None
    rows = rows - rows.mean(0)
    norms = rows.norm(dim=0)
    if float(norms[-1]) == 0:
        return None
    keep = torch.cat([(norms[:-1] > 0).nonzero().flatten(), torch.tensor([rows.shape[1] - 1])])
    unit = rows[:, keep] / norms[keep]
    corr = (unit.T @ unit).clamp(-1, 1)  # (C + 1, C + 1), the target last
    target = 1 - _pair_fits(corr, corr[-1:])[0, :-1, :-1]  # 1 - R^2 of the target on each pair (i, j)
    if not bool((target < EXACT).any()):
        return None
    i, j = divmod(int(target.argmin()), target.shape[1])
    # Inputs deterministic among themselves (a noiseless sine's lags follow a two-term recurrence): a target that
    # follows the same law through those columns proves nothing. Exact relations elsewhere (a one-hot's levels sum
    # to one) do not matter. Every column on every pair: built only now, when the target already fits one.
    inputs = corr[:-1, :-1]
    exact = (1 - _pair_fits(inputs, inputs)) < EXACT  # (k, i, j)
    involved = exact.any(2).any(1) | exact.any(2).any(0) | exact.any(1).any(0)
    if bool(involved[i]) or bool(involved[j]):
        return None
    return int(keep[min(i, j)]), int(keep[max(i, j)]), round(float(target[i, j].clamp(min=0)), 15)


def _pair_fits(corr: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``R^2`` of each column ``k`` whose correlations with every column are the rows ``rows`` (``(K, C)``),
    regressed on every pair ``(i, j)`` of the columns of ``corr`` (``(C, C)``): ``(K, C, C)``. 0 where ``i == j``,
    the pair is collinear or one column of it fits ``k`` alone (``k`` itself included: a one-column relation is
    judged elsewhere)."""
    ki, kj, ij = rows[:, :, None], rows[:, None, :], corr[None, :, :]
    denom = 1 - ij * ij
    collinear = denom < 1e-9
    r2 = (ki * ki + kj * kj - 2 * ki * kj * ij) / torch.where(collinear, torch.ones_like(denom), denom)
    alone = rows.abs() > 1 - EXACT
    skip = collinear | alone[:, :, None] | alone[:, None, :] | torch.eye(corr.shape[0], dtype=torch.bool)[None]
    return torch.where(skip, torch.zeros_like(r2), r2)

"""A feature column ordered exactly as a regression target: a binned copy of the target (its decile, kept for a
stratified split) or any monotone transform of it, for ``target-leakage``.

A column ``c`` is *monotone in the target* ``y`` when ``y_a < y_b`` implies ``c_a <= c_b`` for every pair of rows
(or ``>=`` for every pair). A feature that merely correlates with the target breaks this on some pair as soon as the
noise, or another feature, moves a row past its neighbour, so over many distinct rows only a column computed from
the target itself keeps it. The chance of it is bounded exactly (a permutation test, :func:`chance_monotone`):
shuffle a column that is independent of the target over ``n`` distinct rows. Its value counts ``m_v`` give
``n! / prod(m_v!)`` equally likely arrangements; the arrangements consistent with the order of targets whose tied
groups have sizes ``g_i`` are the sorted one with its values permuted inside each tied group, at most
``prod(g_i!)`` of them. Both directions double it, and Bonferroni multiplies by the columns scanned.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.randn(64, generator=g)
    >>> store = torch.randint(0, 20, (64,), generator=g).float()
    >>> decile = torch.bucketize(y, y.quantile(torch.linspace(0.1, 0.9, 9))).float()
    >>> monotone_columns(torch.stack([store, decile], 1), y)
    [1]
    >>> monotone_columns(torch.stack([store, store + (y > 0)], 1), y)  # correlated, not ordered
    []
"""

from __future__ import annotations

import math

import torch

#: The level of the permutation test, as :data:`lightning_sanity.checks.leakage.CHANCE_COLUMN`.
CHANCE = 1e-3
#: Levels a column needs: a two-level column ordered by the target is also a binary feature whose effect dwarfs
#: the noise (a promotion that doubles sales); three ordered levels separated beyond the noise are the target's bins.
MIN_LEVELS = 3


def _log_factorials(counts: torch.Tensor) -> float:
    return float(torch.lgamma(counts.double() + 1).sum())


def chance_monotone(value_counts: torch.Tensor, tie_counts: torch.Tensor, columns: int = 1) -> float:
    """Upper bound on the chance that some of ``columns`` columns independent of the target is monotone in it on
    distinct rows: ``2 * columns * prod(g_i!) * prod(m_v!) / n!`` (``m_v`` a column's value counts, ``g_i`` the
    targets' tied groups, ``n`` rows).

    >>> import torch
    >>> chance_monotone(torch.tensor([32, 32]), torch.ones(64, dtype=torch.long)) < 1e-15
    True
    >>> chance_monotone(torch.tensor([32, 32]), torch.tensor([13, 13, 13, 13, 12]))  # five target values
    1.0
    """
    n = int(value_counts.sum())
    log_p = math.log(2 * columns) + _log_factorials(tie_counts) + _log_factorials(value_counts) - math.lgamma(n + 1)
    return min(1.0, math.exp(log_p))


def monotone_columns(x: torch.Tensor, y: torch.Tensor, chance: float = CHANCE) -> list[int]:
    """Columns of ``x`` (``(n, F)``, distinct rows, finite) with at least :data:`MIN_LEVELS` values that never
    decrease (or never increase) as the regression target ``y`` (``(n,)``) grows, beyond chance over all ``F``
    columns (:func:`chance_monotone`)."""
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or x.shape[0] < 2 * MIN_LEVELS:
        return []
    y = y.double()
    order = torch.argsort(y, stable=True)
    ys, xs = y[order], x.double()[order]
    _, ties = torch.unique_consecutive(ys, return_counts=True)
    # Inside a tied group the order is free: compare each group's highest value with the next group's lowest.
    group = torch.repeat_interleave(torch.arange(ties.numel()), ties)[:, None].expand_as(xs)
    shape = (ties.numel(), xs.shape[1])
    low = torch.full(shape, math.inf, dtype=torch.double).scatter_reduce(0, group, xs, "amin")
    high = torch.full(shape, -math.inf, dtype=torch.double).scatter_reduce(0, group, xs, "amax")
    rising = (high[:-1] <= low[1:]).all(0)
    falling = (low[:-1] >= high[1:]).all(0)
    found = []
    for j in torch.nonzero(rising | falling).flatten().tolist():
        _, counts = torch.unique(xs[:, j], return_counts=True)
        if counts.numel() >= MIN_LEVELS and chance_monotone(counts, ties, x.shape[1]) < chance:
            found.append(j)
    return found


def block_columns(x: torch.Tensor, index: torch.Tensor, classes: int) -> list[int]:
    """Columns of ``x`` (``(N, F)``, distinct rows) that split the class indices ``index`` (``0 .. classes - 1``)
    into intervals, one per class: sorted by the column, the labels change exactly ``classes - 1`` times and never
    between equal values. A recording index ranked over paths sorted by their class folder, a follow-up time whose
    threshold defines the outcome. The chance of it is the label columns' (``chance_column``): the rows' labels,
    shuffled, fall into the classes' blocks in one of ``classes!`` orders.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> label = torch.arange(40) % 4
    >>> ranked = (label * 10 + torch.randperm(40, generator=g) % 10).float()   # blocks of the label
    >>> block_columns(torch.stack([torch.randn(40, generator=g), ranked], 1), label, 4)
    [1]
    """
    if classes < 2 or x.shape[0] <= classes:
        return []
    values, order = x.sort(dim=0)
    labels = index[order]  # (N, F): the labels along each column's order
    change = labels[1:] != labels[:-1]
    tied = values[1:] == values[:-1]
    ok = (change.sum(0) == classes - 1) & ~(change & tied).any(0)
    return ok.nonzero().flatten().tolist()

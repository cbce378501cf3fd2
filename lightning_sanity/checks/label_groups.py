"""Indicator columns that give the label away, for ``target-leakage``'s label-column scan
(:func:`lightning_sanity.checks.leakage.label_columns`): the label's own one-hot (``how == "one-hot"``,
:func:`indicator_columns`), and the one-hot columns of a category that decides the label (``"one-hot group"``,
:func:`indicator_group`).

A field written after the outcome and one-hot encoded with the other categorical columns (a discharge diagnosis
code: C50.x on every malignant case, N60.x or D24 on every benign one; a closing status, a cancellation reason) is no
single column equal to the label: each level holds rows of one class only, and together the levels cover every row.
Read on distinct rows, two-valued columns whose minority value marks rows of one class only (**pure** columns, each
on at least :data:`MIN_ROWS` rows), which together mark every row (a level of fewer rows, of one class, may mark
some) and span at least two classes.

The chance bound is the label-column scan's permutation test: with the labels of the ``d`` distinct rows shuffled,
a level held by ``k`` rows is pure with probability ``sum_c C(d_c, k) / C(d, k)``; the levels are disjoint, so the
group's chance is about the product over its columns, times the columns scanned. A category of many small levels
(an entity id, one or two rows each on a batch) never reaches the level of :data:`CHANCE`; a few levels of several
rows each do at once.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = (torch.rand(64, generator=g) < 0.4).long()
    >>> code = torch.where(y == 1, torch.randint(0, 3, (64,), generator=g), torch.randint(3, 7, (64,), generator=g))
    >>> x = torch.cat([torch.randn(64, 5, generator=g), torch.nn.functional.one_hot(code, 7).float()], 1)
    >>> indicator_group(x, y)
    [5, 6, 7, 8, 9, 10, 11]
    >>> indicator_group(x[:, :5], y)
    []
"""

from __future__ import annotations

import math

import torch

#: The level of the permutation test (the label-column scan's ``CHANCE_COLUMN``; not imported: that module imports
#: this one).
CHANCE = 1e-3
#: Rows a level holds at least to count: a level of one row is pure whatever the label.
MIN_ROWS = 3
#: Levels at most: a category of more levels than this is an identity, not a field that records the outcome.
MAX_LEVELS = 16


def _log_pure(k: int, per_class: list[int]) -> float:
    """``log sum_c C(d_c, k) / C(d, k)``: the log-chance that ``k`` of ``d`` shuffled rows share one class."""
    d = sum(per_class)
    terms = [math.lgamma(n + 1) - math.lgamma(n - k + 1) for n in per_class if n >= k]
    if not terms:
        return -math.inf
    top = max(terms)
    log_sum = top + math.log(sum(math.exp(t - top) for t in terms))
    return log_sum - (math.lgamma(d + 1) - math.lgamma(d - k + 1))


def indicator_group(x: torch.Tensor, labels: torch.Tensor, chance: float = CHANCE) -> list[int]:
    """Columns of ``x`` (``(d, F)`` distinct rows, finite) that are the pure levels of a category deciding
    ``labels`` (``(d,)`` integer classes) on every row; ``[]`` when none do, or chance could explain it."""
    d = x.shape[0]
    low, high = x.amin(0), x.amax(0)
    two = ((x == low) | (x == high)).all(0) & (low != high)
    if int(two.sum()) < 2:
        return []
    cols = torch.nonzero(two).flatten()
    on = x[:, cols] == high[cols]
    flip = on.sum(0) * 2 > d  # the minority value marks a level
    on = on ^ flip
    counts = on.sum(0)
    classes, index = torch.unique(labels, return_inverse=True)
    members = torch.nn.functional.one_hot(index, classes.numel()).to(torch.int64)
    per_level = on.to(torch.int64).T @ members  # (columns, classes): rows of each class the level holds
    one_class = per_level.amax(1) == counts
    pure = one_class & (counts >= MIN_ROWS)
    if not 2 <= int(pure.sum()) <= MAX_LEVELS:
        return []
    # Every row is marked by a pure level, or by a level too rare to judge that holds one class too.
    covered = on[:, pure].any(1) | on[:, one_class & (counts < MIN_ROWS)].any(1)
    spans = int((per_level[pure].amax(0) > 0).sum())
    if not bool(covered.all()) or spans < 2:
        return []
    per_class = members.sum(0).tolist()
    log_chance = sum(_log_pure(int(k), per_class) for k in counts[pure].tolist()) + math.log(int(two.sum()))
    return sorted(cols[pure].tolist()) if log_chance < math.log(chance) else []


def indicator_columns(x: torch.Tensor, index: torch.Tensor, classes: int) -> torch.Tensor:
    """``(columns, classes)`` bool: column j takes two values, and which of them a sample holds says whether it is
    of class c (either way round)."""
    low, high = x.amin(0), x.amax(0)
    two_values = ((x == low) | (x == high)).all(0) & (low != high)
    on = (x == high).float()
    members = torch.nn.functional.one_hot(index, classes).float()
    # Rows where the column's "on" agrees with membership: n for an indicator, 0 for its negation (exact counts).
    agree = on.T @ members + (1 - on).T @ (1 - members)
    n = x.shape[0]
    return two_values[:, None] & ((agree == n) | (agree == 0))

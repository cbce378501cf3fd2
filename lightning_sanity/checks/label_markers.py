"""A feature column that marks one class exactly: part of ``target-leakage``'s label-column scan
(:func:`lightning_sanity.checks.leakage.label_columns`, ``how == "marker"``), as a pure function.

Some value ``v`` of the column is held by every row of one class and by no row of the others, while the other
classes' values vary (else the column takes one value per class: ``"equal"``). A field filled in only after the
outcome (``downtime_minutes``: 0 on every healthy pump, a varied positive number on each failed one), a
cancellation date left as 0 for every customer who stayed: the column spells out the label through its ``v``.

The chance bound is the permutation test of ``"equal"``: with the labels of the ``d`` distinct rows shuffled,
class ``c``'s rows are a uniform subset of size ``d_c``, which equals one given value's rows with chance
``1 / C(d, d_c)``; a column has at most ``d // d_c`` values held by ``d_c`` rows. Classes are scanned from the
least likely to match by chance while the sum over them and the columns stays below the scan's level (the classes'
sizes decide which, never the columns): a class of 3 rows in 64 is never judged, so a rare class whose rows happen
to share a zero count proves nothing.

The other classes' values must be measured ones: at least :data:`MEASURED_ROWS` rows, :data:`DISTINCT` of them
distinct (a duration, a cost). Real features strongly tied to a class are often discrete, and then one class can
hold one level on a batch without any leak: a saturated pixel of sklearn's digits (16 on every "1" of a batch of
32, and never elsewhere there; 17 levels, 11 distinct values on the 25 other rows), a small count, a binary flag
or a one-hot column (left to ``"one-hot"``). What stays silent besides: a zero-inflated count that is 0 on most
rows of one class but not on all, or also on some rows of another (a real signal breaks the rule on some row).

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = (torch.rand(64, generator=g) < 0.3).long()
    >>> x = torch.randn(64, 3, generator=g)
    >>> downtime = y * (30 + 300 * torch.rand(64, generator=g))
    >>> marker_columns(torch.cat([x, downtime[:, None]], 1), y)
    [3]
    >>> marker_columns(x, y)
    []
"""

from __future__ import annotations

import math

import torch

#: The level of the permutation test (the label-column scan's ``CHANCE_COLUMN``; not imported: that module imports
#: this one).
CHANCE = 1e-3
#: Rows outside the marked class, and the share of them holding distinct values, for those values to be measured
#: ones (the values of :mod:`.class_fill`, not imported for the same reason).
MEASURED_ROWS = 8
DISTINCT = 0.75


def marked_classes(per_class: list[int], columns: int, chance: float = CHANCE) -> list[int]:
    """The classes (indices into ``per_class``, the distinct rows of each) judged: the least likely to be matched
    by chance first, while the bound summed over them and ``columns`` stays below ``chance``.

    >>> marked_classes([48, 16], 4)
    [0, 1]
    >>> marked_classes([61, 3], 30)  # 3 rows of 64: 30 columns would match them by chance too often
    [0]
    """
    d = sum(per_class)
    bound = [columns * (d // k) * math.exp(math.lgamma(k + 1) + math.lgamma(d - k + 1) - math.lgamma(d + 1))
             for k in per_class]
    judged, total = [], 0.0
    for c in sorted(range(len(per_class)), key=lambda c: bound[c]):
        total += bound[c]
        if total >= chance:
            break
        judged.append(c)
    return judged


def marker_columns(x: torch.Tensor, labels: torch.Tensor, chance: float = CHANCE) -> list[int]:
    """Columns of ``x`` (``(d, F)`` distinct rows, finite) in which one value is held by exactly the rows of one
    class of ``labels`` (``(d,)`` integer classes), that class judged by :func:`marked_classes`."""
    classes, index, per_class = torch.unique(labels, return_inverse=True, return_counts=True)
    judged = marked_classes(per_class.tolist(), int(x.shape[1]), chance)
    if classes.numel() < 2 or not judged:
        return []
    rows = index[:, None].expand_as(x)
    size = (classes.numel(), x.shape[1])
    low = torch.full(size, math.inf).scatter_reduce(0, rows, x, "amin")
    high = torch.full(size, -math.inf).scatter_reduce(0, rows, x, "amax")
    found: set[int] = set()
    for c in judged:
        # One value on all of class c, held by no row outside it, whose values are measured: candidate columns only.
        cand = torch.nonzero(low[c] == high[c]).flatten()
        others = x[index != c][:, cand].sort(0).values
        if not cand.numel() or others.shape[0] < MEASURED_ROWS:
            continue
        held = (x[:, cand] == low[c, cand]).sum(0)
        distinct = 1 + (others[1:] != others[:-1]).sum(0)
        found.update(cand[(held == int(per_class[c])) & (distinct >= DISTINCT * others.shape[0])].tolist())
    return sorted(found)

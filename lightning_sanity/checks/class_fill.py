"""Missing values filled with their class's statistic: part of ``target-leakage`` (tabular), as pure functions.

"Group-wise imputation" (``df[c].fillna(df.groupby("label")[c].transform("mean"))``) done before the split writes
one fill value per class into each column with gaps: every imputed cell then spells out its row's label. What the
first training batch shows: in a column of measured values (values that almost never tie), a few *mass points*
(one value held by several rows), and each mass point's rows all of one class, two mass points of the same column
holding two different classes.

The chance bound is a permutation test, made once per batch. Join the rows that share a mass point (in any
column) into groups: the groups depend on the inputs only. With the labels shuffled over the batch's rows, the
chance that every group is of one class is exact: ``sum over class assignments of prod_c n_c!/(n_c - K_c)!`` over
``n!/(n - K)!`` (``K_c`` the rows given class ``c``), about ``p^k`` per group of ``k`` rows (the labels' prior to the
power of the rows). It fires when that chance is below :data:`CHANCE` (the level of the label-column scan).

What stays silent, and why:

- a fill with the column's global mean or median: one mass point holding both classes (that column is left out),
  or of one class only (missingness that tells the class through a single fill value is a signal real data also
  carries: a column must hold two mass points of two classes);
- duplicated rows (an oversampling sampler): only distinct rows are scanned;
- values at the column's minimum or maximum (clipped readings, a sentinel like -999, a detection limit at 0): a
  mass point must lie strictly inside the column's range, where the class mean of a measurement sits;
- categorical, count or quantised columns: outside its mass points a measured column's values are nearly all
  distinct (:data:`DISTINCT`); a column whose values tie often is discrete, and its ties mean nothing.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(32) % 2
    >>> x = torch.randn(32, 4, generator=g)
    >>> fill = torch.rand(32, 4, generator=g) < 0.4
    >>> leaky = torch.where(fill, torch.where(y[:, None] == 1, 0.3, -0.2), x)
    >>> class_fill(leaky, y)["columns"]
    [0, 1, 2, 3]
    >>> class_fill(torch.where(fill, 0.05, x), y) is None  # one global-mean fill: silent
    True
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Optional

import numpy as np
import torch

from lightning_sanity.checks.leakage import CHANCE_COLUMN

#: The level of the permutation test: the label-column scan's.
CHANCE = CHANCE_COLUMN
#: A mass point: one value held by at least this many rows of a column (two rows tie by measurement precision).
MASS = 3
#: Outside its mass points, a measured column holds at least this share of distinct values among its rows.
DISTINCT = 0.75
#: Rows outside the mass points needed to call a column measured.
MEASURED_ROWS = 8
#: Groups used in the exact bound (the largest ones; the chance that all groups are pure is at most theirs).
MAX_GROUPS = 6


def mass_points(col: torch.Tensor) -> Optional[list[torch.Tensor]]:
    """Row masks of the interior mass points of one column of measured values, or ``None`` when the column is not
    one (discrete values, too few measured rows)."""
    values, inverse, counts = torch.unique(col, return_inverse=True, return_counts=True)
    mass = counts >= MASS
    if not bool(mass.any()):
        return None
    rest = ~mass[inverse]
    n_rest = int(rest.sum())
    if n_rest < MEASURED_ROWS or int((~mass).sum()) < DISTINCT * n_rest:
        return None
    if bool((col == col.round()).all()):
        return None  # integer codes: categories or counts
    lo, hi = values[0], values[-1]
    return [inverse == i for i in torch.nonzero(mass).flatten().tolist() if lo < values[i] < hi]


def _groups(masks: list[torch.Tensor], n: int) -> list[list[int]]:
    """Connected components (of at least 2 rows) of the rows that share a mass point."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for m in masks:
        rows = torch.nonzero(m).flatten().tolist()
        for r in rows[1:]:
            parent[find(r)] = find(rows[0])
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(find(i), []).append(i)
    return [c for c in comps.values() if len(c) >= 2]


def _log_falling(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(n - k + 1) if 0 <= k <= n else -math.inf


def pure_chance(sizes: list[int], per_class: list[int]) -> float:
    """Chance that groups of these sizes (disjoint rows) are each of one class when the labels (``per_class``
    counts) are shuffled over the rows. Exact for at most :data:`MAX_GROUPS` groups (the largest are kept: the
    chance of all being pure is at most theirs).

    >>> round(pure_chance([4], [5, 5]), 4)  # 2 * (5*4*3*2) / (10*9*8*7)
    0.0476
    """
    sizes = sorted(sizes, reverse=True)[:MAX_GROUPS]
    classes = len(per_class)
    while classes ** len(sizes) > 4096:
        sizes = sizes[:-1]
    n, total = sum(per_class), sum(sizes)
    denom = _log_falling(n, total)
    chance = 0.0
    for assign in itertools.product(range(classes), repeat=len(sizes)):
        k = [0] * classes
        for s, c in zip(sizes, assign):
            k[c] += s
        log_num = sum(_log_falling(per_class[c], k[c]) for c in range(classes))
        if log_num > -math.inf:
            chance += math.exp(log_num - denom)
    return min(1.0, chance)


def _runs(x: torch.Tensor) -> torch.Tensor:
    """Per column, whether some value is held by at least :data:`MASS` rows."""
    if x.shape[0] < MASS:
        return torch.zeros(x.shape[1], dtype=torch.bool)
    ordered = np.sort(x.detach().cpu().numpy(), axis=0)  # numpy's column sort: no thread pool spun up for it
    return torch.from_numpy((ordered[MASS - 1:] == ordered[: ordered.shape[0] - MASS + 1]).any(0))


def _has_runs(x: torch.Tensor) -> bool:
    return bool(_runs(x).any())


def class_fill(x: torch.Tensor, y: torch.Tensor, chance: float = CHANCE) -> Optional[dict[str, Any]]:
    """The evidence that ``x`` (``(N, F)``) holds per-class fill values of the class labels ``y``
    (``(N,)`` integer-valued), or ``None``."""
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or not x.is_floating_point():
        return None
    if not _has_runs(x) or not bool(torch.isfinite(x).all()) or not bool((y == y.round()).all()):
        return None  # no value held by MASS rows of a column (the common healthy case: one sort)
    # Only distinct rows are evidence: a row repeated by a sampler is a mass point of its class in every column.
    pairs = torch.unique(torch.cat([x.double(), y.double()[:, None]], 1), dim=0)
    x, labels = pairs[:, :-1], pairs[:, -1].long()
    classes, index, per_class = torch.unique(labels, return_inverse=True, return_counts=True)
    if classes.numel() < 2:
        return None
    masks, columns, split_columns = [], [], []
    for j in torch.nonzero(_runs(x)).flatten().tolist():  # per-column work only where there is a mass point
        found = mass_points(x[:, j])
        if not found:
            continue
        seen = [torch.unique(index[m]) for m in found]
        if any(c.numel() > 1 for c in seen):
            continue  # a fill shared by two classes (a global mean, a median): this column says nothing
        seen = [int(c) for c in seen]
        masks += found
        columns.append(j)
        if len(set(seen)) >= 2:
            split_columns.append(j)
    if not split_columns:
        return None  # no column holds one fill per class
    groups = _groups(masks, x.shape[0])
    p = pure_chance([len(g) for g in groups], per_class.tolist())
    if p >= chance:
        return None
    rows = sum(len(g) for g in groups)
    return {"columns": columns, "split_columns": split_columns, "chance": p, "groups": len(groups),
            "rows": rows, "samples": int(x.shape[0])}

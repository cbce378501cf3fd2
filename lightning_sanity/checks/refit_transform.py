"""A preprocessing step fitted again on the validation rows (``fit_transform(x_val)`` where ``transform(x_val)`` was
meant), read from the exact fingerprint such a fit leaves on the rows it was fitted on; for ``val-divergence``.

A StandardScaler (or a whitened PCA) fitted on a set of rows gives every column of exactly those rows a mean of 0
and a variance of 1 (ddof 0, or (n-1)/n for PCA's and ``torch.std``'s ddof 1) to float round-off; a MinMaxScaler a
minimum and maximum of exactly 0 and 1 (or -1 and 1). Fitted on the training rows and applied to validation rows, the
same moments miss by sampling noise (about 1/sqrt(n) for a mean, 1/n for an extreme), never by round-off. Both
splits carrying the fingerprint means the validation rows were transformed with their own statistics.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> raw_train, raw_val = torch.randn(200, 5, generator=g) * 3 + 1, torch.randn(60, 5, generator=g) * 3 + 1
    >>> mu, sd = raw_train.mean(0), raw_train.std(0)
    >>> fit = lambda x: (x - x.mean(0)) / x.std(0)
    >>> judge_refit(column_moments(fit(raw_train)), 200, column_moments((raw_val - mu) / sd), 60) is None
    True
    >>> judge_refit(column_moments(fit(raw_train)), 200, column_moments(fit(raw_val)), 60)["fingerprint"]
    'standardised'
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

#: band of a standardised column's mean (in units of its sd) and variance that float round-off explains: 2^-13, about
#: 1000 float32 epsilons (2^-23), room for a user's float32 arithmetic on raw columns offset 1000 sds from zero.
ROUNDOFF = 2.0 ** -13
#: band of a min-max scaled column's extremes (in units of the range): the fitted extreme row maps to 0 (x - min) and
#: to 1 (range / range) exactly in float32; 2^-20 is 8 float32 ulps at 1, room for float64 -> float32 casts.
EXTREME_ROUNDOFF = 2.0 ** -20
#: the round-off band must be this many times narrower than the sampling noise of a transform fitted elsewhere
#: (1/sqrt(n) for a mean, about 1/n for an extreme), so that a correct pipeline lands in it by chance rarely.
NOISE_UNITS = 10
#: fewest validation rows: fewer make every moment noisy and the judgement pointless.
MIN_VAL_ROWS = 20
#: fewest non-constant columns in both splits (one column matching by chance must not decide).
MIN_COLUMNS = 2
#: share of the non-constant columns that may miss the fingerprint (a passthrough id column among 20+ scaled ones).
MISS_SHARE = 0.05
#: rows allowed at the fitted end of a min-max column: one row is the extreme itself, a tie adds one; a column with
#: many rows at *both* ends is two-valued or bounded by nature (binary, one-hot, a rating), which any split shows.
END_ROWS = 2
#: mean of (x - a)(b - x) over ((b - a)/2)^2 a min-max column must keep inside its range: exactly 0 for two-valued
#: columns; continuous columns scaled to their range sit far above it.
MIN_INSIDE = 1e-3
#: (low, high) ranges of min-max scaling: ``MinMaxScaler()`` and ``feature_range=(-1, 1)``.
RANGES = ((0.0, 1.0), (-1.0, 1.0))
#: the rows of :func:`column_moments`.
SUM, SQUARES, LOW, HIGH, AT_ZERO, AT_ONE, AT_MINUS_ONE = range(7)


def column_moments(x: torch.Tensor) -> torch.Tensor:
    """``(7, F)`` float64 moments of a ``(B, F)`` input on its device (no host sync): per column the sum, the sum of
    squares, the min, the max and the rows within the extreme round-off of 0, 1 and -1.

    >>> column_moments(torch.tensor([[0.0, 1.0], [1.0, 3.0]]))[:, 0].tolist()
    [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0]
    """
    v = x.detach().double()
    # The counts reuse one scratch tensor, in place (exact: sums of a 0/1 float64 mask): ``val-divergence`` takes
    # the moments of every 2048 training rows, and a fresh tensor per operation cost a tabular model about 1 ms a
    # block, three times what the arithmetic does.
    d = torch.empty_like(v)
    near = [torch.sub(v, c, out=d).abs_().le_(EXTREME_ROUNDOFF).sum(0, dtype=torch.float64) for c in (0.0, 1.0, -1.0)]
    return torch.stack([v.sum(0), (v * v).sum(0), v.amin(0), v.amax(0), *near])


def merge(a: Optional[torch.Tensor], b: torch.Tensor) -> torch.Tensor:
    """The moments of two sets of rows together."""
    if a is None:
        return b
    out = a + b
    out[LOW], out[HIGH] = torch.minimum(a[LOW], b[LOW]), torch.maximum(a[HIGH], b[HIGH])
    return out


def _varying(m: torch.Tensor) -> torch.Tensor:
    scale = torch.maximum(m[LOW].abs(), m[HIGH].abs()).clamp_min(1e-30)
    return (m[HIGH] - m[LOW]) > ROUNDOFF * scale


def _standardised(m: torch.Tensor, n: int) -> torch.Tensor:
    mean = m[SUM] / n
    var = (m[SQUARES] / n - mean * mean).clamp_min(0.0)
    unit = ((var - 1).abs() <= 2 * ROUNDOFF) | ((var - (n - 1) / n).abs() <= 2 * ROUNDOFF)
    return unit & (mean.abs() <= ROUNDOFF * var.sqrt())


def _scaled(m: torch.Tensor, n: int, low: float, high: float) -> torch.Tensor:
    band = EXTREME_ROUNDOFF * (high - low)
    ends = ((m[LOW] - low).abs() <= band) & ((m[HIGH] - high).abs() <= band)
    rows_low = m[AT_ZERO] if low == 0 else m[AT_MINUS_ONE]
    few = torch.minimum(rows_low, m[AT_ONE]) <= END_ROWS
    inside = (-(m[SQUARES] / n) + (low + high) * m[SUM] / n - low * high) / ((high - low) / 2) ** 2
    return ends & few & (inside >= MIN_INSIDE)


def _fingerprints(m: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    marks = {"standardised": _standardised(m, n)}
    for low, high in RANGES:
        marks[f"min-max [{low:g}, {high:g}]"] = _scaled(m, n, low, high)
    return marks


def _carries(mark: torch.Tensor, columns: torch.Tensor) -> bool:
    total = int(columns.sum())
    return total >= MIN_COLUMNS and int((columns & ~mark).sum()) <= int(MISS_SHARE * total)


def _same_rows(train: torch.Tensor, n_train: int, val: torch.Tensor, n_val: int) -> bool:
    """Validation run on the training rows themselves (a toy setup): both carry one fit, not two."""
    return n_train == n_val and torch.allclose(train[:4], val[:4], rtol=1e-9, atol=1e-9)


def judge_refit(train: Optional[torch.Tensor], n_train: int, val: Optional[torch.Tensor], n_val: int,
                firsts: tuple[Optional[torch.Tensor], ...] = (), first_rows: tuple[int, ...] = ()
                ) -> Optional[dict[str, Any]]:
    """The fingerprint both splits carry, with its figures, or None.

    ``train`` and ``val`` are :func:`column_moments` over every row of the whole split (``n_train``, ``n_val``);
    ``firsts`` the moments of each split's first batch (``first_rows`` rows) when the split has more than one
    batch: a first batch that carries the fingerprint too is normalised per batch, not per split.
    """
    if train is None or val is None or n_val < MIN_VAL_ROWS or n_train < MIN_VAL_ROWS:
        return None
    train, val = train.detach().double().cpu(), val.detach().double().cpu()
    if train.shape != val.shape or _same_rows(train, n_train, val, n_val):
        return None
    columns = _varying(train) & _varying(val)
    train_marks, val_marks = _fingerprints(train, n_train), _fingerprints(val, n_val)
    for kind, val_mark in val_marks.items():
        standard = kind == "standardised"
        noise = 1 / math.sqrt(n_val) if standard else 1 / n_val
        if NOISE_UNITS * (ROUNDOFF if standard else EXTREME_ROUNDOFF) > noise:
            continue  # a split so large that a correct pipeline's noise reaches round-off
        if not (_carries(train_marks[kind], columns) and _carries(val_mark, columns)):
            continue
        if any(first is not None and rows >= 2 and _carries(_fingerprints(first.double().cpu(), rows)[kind], columns)
               for first, rows in zip(firsts, first_rows)):
            return None  # normalised per batch: the same on both splits, not a refit
        return _figures(kind, train, n_train, val, n_val, columns & val_mark)
    return None


def _figures(kind: str, train: torch.Tensor, n_train: int, val: torch.Tensor, n_val: int,
             columns: torch.Tensor) -> dict[str, Any]:
    index = torch.nonzero(columns).flatten()
    data: dict[str, Any] = {"fingerprint": kind, "columns": index[:50].tolist(), "matching_columns": len(index),
                            "total_columns": int(train.shape[1]), "train_rows": n_train, "val_rows": n_val}
    for split, m, n in (("train", train, n_train), ("val", val, n_val)):
        if kind == "standardised":
            mean = m[SUM, index] / n
            var = m[SQUARES, index] / n - mean * mean
            data[f"{split}_largest_abs_mean"] = float(mean.abs().max())
            data[f"{split}_variance_range"] = [float(var.min()), float(var.max())]
        else:
            data[f"{split}_min_range"] = [float(m[LOW, index].min()), float(m[LOW, index].max())]
            data[f"{split}_max_range"] = [float(m[HIGH, index].min()), float(m[HIGH, index].max())]
    data["sampling_noise"] = 1 / math.sqrt(n_val) if kind == "standardised" else 1 / n_val
    return data

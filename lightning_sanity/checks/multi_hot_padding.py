"""Multi-hot targets built from ragged label lists padded with a real class id.

A collate that pads ragged tag lists to a rectangle with ``0`` and scatters them into multi-hot rows
(``zeros(B, K).scatter_(1, padded, 1.0)``) marks class 0 positive on every row that had fewer labels than the
longest row of its batch, when 0 is a real class. The signature: within each batch, a class is positive on every
row with fewer positives than the batch's maximum, alongside the row's other labels, yet only sometimes on the
rows with the most positives.

Why it cannot be chance: in real multi-label data a row with more labels is, if anything, more likely to hold any
given class, so a class's rate on the shorter rows is at most about its rate ``q`` on the longest ones, and being
positive on all ``n`` shorter rows that hold another label too has probability at most ``q^n``. The rule fires when
that bound, summed over the ``K`` classes, is below ``ALPHA`` (``q`` estimated with one pseudo-count each way, so
a class seen on every long row is never suspect). Rows where the class is the only label are left out of ``n``: a
class that only ever occurs alone ("none of the above") is short by nature, not by padding. Needs rows of at least
three lengths' worth of room: with at most two labels per row, the padded rows look like ordinary ones.

Example::

    >>> import torch
    >>> rows = torch.zeros(60, 5); rows[:, 0] = 1
    >>> rows[::3, 0] = torch.tensor([1.0, 0.0] * 10); rows[::3, 3] = 1 - rows[::3, 0]
    >>> rows[::3, 1:3] = 1  # 3-label rows: class 0 on half of them
    >>> rows[1::3, 2] = 1; rows[2::3, 4] = 1  # 1 real label + padding 0
    >>> padded_class([rows])["class"]
    0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

import torch

#: Family-wise chance bound (over the classes) under which a class is named.
ALPHA = 1e-3


def padded_class(batches: Sequence[torch.Tensor], alpha: float = ALPHA) -> Optional[dict[str, Any]]:
    """Figures of the class padding put on the shorter rows of multi-hot ``(B, K)`` 0/1 targets, or None."""
    batches = [b.detach().double().cpu() for b in batches if b.dim() == 2 and b.shape[0] > 1 and b.shape[1] >= 2]
    if not batches or len({b.shape[1] for b in batches}) != 1:
        return None
    if any(not bool(((b == 0) | (b == 1)).all()) for b in batches):
        return None
    k = batches[0].shape[1]
    short_rows = short_with_others = long_rows = 0
    short_pos = torch.zeros(k, dtype=torch.float64)
    others_pos = torch.zeros(k, dtype=torch.float64)
    long_pos = torch.zeros(k, dtype=torch.float64)
    for b in batches:
        counts = b.sum(1)
        longest = counts.max()
        short, long_ = counts < longest, counts == longest
        short_rows += int(short.sum())
        long_rows += int(long_.sum())
        short_pos += b[short].sum(0)
        # rows where the class has company: for each class, the short rows holding it and another label
        others_pos += (b[short] * (counts[short] >= 2).double().unsqueeze(1)).sum(0)
        short_with_others += int((short & (counts >= 2)).sum())
        long_pos += b[long_].sum(0)
    if short_rows == 0 or long_rows == 0:
        return None
    for c in range(k):
        if short_pos[c] < short_rows or others_pos[c] < short_with_others:
            continue  # not on every shorter row
        q = (float(long_pos[c]) + 1) / (long_rows + 2)
        chance = k * math.exp(short_with_others * math.log(q))
        if chance < alpha:
            return {"class": c, "short_rows": short_rows, "short_rows_with_others": short_with_others,
                    "long_rows": long_rows, "rate_on_long_rows": round(float(long_pos[c]) / long_rows, 4),
                    "chance_bound": chance}
    return None

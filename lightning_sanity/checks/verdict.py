"""What a judgement on host figures returns (:class:`Verdict`), and the small order statistics the judgements of
``prediction-jitter``, ``loss-trend`` and ``lr-schedule`` share.

Example::

    >>> rank_correlation([1.0, 2.0, 3.0, 4.0])
    1.0
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

@dataclasses.dataclass
class Verdict:
    """What a judgement found: a short ``kind`` (e.g. ``"rising"``), the finding's message, advice and figures."""

    kind: str
    message: str
    advice: str
    data: dict[str, Any]
    severity: str = "warning"


def _median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    return float("nan") if n == 0 else (s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2]))


def _quantile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if not s:
        return float("nan")
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def rank_correlation(values: Sequence[float]) -> float:
    """Spearman correlation between position and value: +1 steadily rising, -1 steadily falling.

    >>> rank_correlation([1.0, 2.0, 3.0, 4.0]), rank_correlation([4.0, 3.0, 2.0, 1.0])
    (1.0, -1.0)
    """
    n = len(values)
    if n < 3:
        return 0.0
    order = sorted(range(n), key=lambda i: values[i])
    ranks = [0.0] * n
    for r, i in enumerate(order):
        ranks[i] = float(r)
    mean = (n - 1) / 2
    cov = sum((i - mean) * (r - mean) for i, r in enumerate(ranks))
    var = sum((i - mean) ** 2 for i in range(n))
    return cov / var

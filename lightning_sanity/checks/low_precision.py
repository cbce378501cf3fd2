"""Updates that round away in low-precision weights: part of ``update-ratio``, as pure functions.

Weights stored in bfloat16 or float16 with no float32 master copy (Lightning's ``precision="bf16-true"`` or
``"16-true"``) are updated in that dtype: ``w + dw`` is rounded to the nearest representable value, so any ``|dw|``
below half the spacing between neighbours of ``w`` (half an ulp, about ``|w| * eps(dtype) / 2``) is lost. An
Adam-family optimizer's step is about ``lr`` per element whatever the gradient (``m / sqrt(v)`` is about +-1), so
when the peak ``lr`` of a parameter's group is below half an ulp of that parameter's median weight, at least half of
its elements never move. bfloat16 has 8 significant bits (``eps`` 2^-7): a weight of 0.1 needs steps of 4e-4.

Example::

    >>> import torch
    >>> w = torch.full((4, 4), 0.5, dtype=torch.bfloat16)
    >>> round(half_ulp(w), 5)
    0.00195
    >>> v = judge_rounding([("embed.weight", 640, half_ulp(w), 1e-4)])
    >>> v.kind, round(v.share, 2)
    ('rounds-away', 1.0)
    >>> judge_rounding([("embed.weight", 640, half_ulp(w), 1e-2)]) is None
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Optional

import torch

#: Dtypes whose weights lose small updates; float32 (eps 1.2e-7) would need lr below 1e-8 on unit weights.
LOW_PRECISION = (torch.bfloat16, torch.float16)
#: Fire when at least this share of the low-precision trainable elements sits in parameters whose median weight
#: cannot take the group's largest step: "most updates round away", the majority by construction of the median.
SHARE = 0.5
#: Elements read per parameter for its median (a strided sample): the median of 2^16 draws is within a few
#: percent of the whole tensor's, far below the factor-2 granularity of an ulp.
SAMPLE = 1 << 16


@dataclasses.dataclass
class Rounding:
    kind: str
    share: float
    layers: list[str]
    data: dict[str, Any]


def is_adam_family(optimizer: Any) -> bool:
    """Adam, AdamW, NAdam, RAdam, Adamax and lookalikes: a step of about ``lr`` per element."""
    return "adam" in type(optimizer).__name__.lower()


def half_ulp(weight: torch.Tensor) -> float:
    """Half the spacing of representable values at the median ``|w|`` of ``weight``, in its own dtype."""
    flat = weight.detach().reshape(-1)
    if flat.numel() > SAMPLE:
        flat = flat[:: flat.numel() // SAMPLE]
    median = float(flat.float().abs().median())
    return median * torch.finfo(weight.dtype).eps / 2


def judge_rounding(layers: Sequence[tuple[str, int, float, float]], share: float = SHARE) -> Optional[Rounding]:
    """``layers``: ``(name, elements, half_ulp, peak_lr)`` of every trainable low-precision parameter under an
    Adam-family optimizer. Returns a verdict when the parameters whose ``peak_lr < half_ulp`` hold at least ``share``
    of the elements."""
    total = sum(n for _, n, _, _ in layers)
    lost = [(name, n, h, lr) for name, n, h, lr in layers if math.isfinite(h) and lr < h]
    if not total or not lost:
        return None
    frac = sum(n for _, n, _, _ in lost) / total
    if frac < share:
        return None
    lost.sort(key=lambda row: -row[1])
    return Rounding("rounds-away", frac, [name for name, _, _, _ in lost],
                    {"kind": "rounds-away", "share": round(frac, 4), "layers": [r[0] for r in lost[:20]],
                     "half_ulp": [r[2] for r in lost[:20]], "peak_lr": [r[3] for r in lost[:20]],
                     "elements": total})

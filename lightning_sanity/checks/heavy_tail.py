"""``input-scale``'s heavy-tailed inputs: non-negative features whose values span so many orders of magnitude that
a linear rescaling (``x / std``, an input BatchNorm) leaves most of them squashed near zero.

Raw power spectrograms (1e-14 to 1e7), raw gene or word counts, byte sizes, prices over several decades: dividing
by the spread puts the loudest samples on the unit scale and every other one within a hair of zero. What a network
can use is the rule the check already applies to a whole input: magnitudes below ``SMALL_MAX`` (0.01) of the unit
scale are "almost nothing" to a first layer initialised for unit-variance inputs. Here it is applied to each
feature after the rescaling the model does itself: a feature whose median positive value is below ``SMALL_MAX``
times its standard deviation has half of its informative samples invisible, and no affine map (BatchNorm,
standardisation) can change that ratio. A log (or log1p, dB) can.

Counted per feature and per batch, on the device, with the batch's own standard deviation: the positive values,
and those below ``SMALL_MAX`` of the standard deviation (exact zeros are sparsity, not scale, and never count).

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> power = 10 ** (8 * torch.rand(64, 3, generator=g))  # eight decades
    >>> flat = power.double()
    >>> positives, squashed = squashed_counts(flat, flat.sum(0), (flat * flat).sum(0))
    >>> bool((2 * squashed > positives).all())
    True
"""

from __future__ import annotations

from typing import Any, Optional

import torch

#: The "tiny input" rule (``checks/data.py``'s ``SMALL_MAX``): below this share of the unit scale a first layer
#: initialised for unit-variance inputs sees almost nothing.
SQUASHED = 1e-2
#: Fewest positive values of a feature for its median to be judged (a handful of samples say little).
MIN_POSITIVES = 16


def squashed_counts(flat: torch.Tensor, sums: torch.Tensor, sumsq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per feature of a ``(B, F)`` batch: how many values are positive, and how many of those are below
    :data:`SQUASHED` times the feature's standard deviation over the batch (``sums`` and ``sumsq`` its sums)."""
    rows = flat.shape[0]
    mean = sums / rows
    std = (sumsq / rows - mean * mean).clamp_min(0).sqrt()
    positive = flat > 0
    squashed = positive & (flat < (SQUASHED * std).to(flat.dtype))
    return positive.sum(0).double(), squashed.sum(0).double()


def heavy_tail(minimum: Optional[torch.Tensor], positives: Optional[torch.Tensor],
               squashed: Optional[torch.Tensor]) -> Optional[dict[str, Any]]:
    """The figures of the non-negative features (over every batch read) whose median positive value sits below
    :data:`SQUASHED` of their standard deviation, or None when there is none.

    >>> heavy_tail(torch.zeros(3), torch.tensor([64.0, 64.0, 4.0]), torch.tensor([50.0, 3.0, 4.0]))
    {'heavy_features': 1, 'judged_features': 2, 'squashed_share': 0.781}
    """
    if minimum is None or positives is None or squashed is None:
        return None
    judged = (minimum >= 0) & (positives >= MIN_POSITIVES)
    heavy = judged & (2 * squashed > positives)
    if not bool(heavy.any()):
        return None
    return {"heavy_features": int(heavy.sum()), "judged_features": int(judged.sum()),
            "squashed_share": round(float(squashed[heavy].sum() / positives[heavy].sum()), 3)}

"""An output that becomes input-independent during training without being bit-for-bit constant.

The spread of a model's output across the fixed batch's samples (each output unit's standard deviation over the
samples, averaged over units) says how much the input still moves the output. At the first snapshot it is what an
untrained model passes on from its inputs; a model that learns from its input keeps or grows it (towards the
targets' own spread). When the spread falls below ``1/sqrt(B)`` of its value at the start (``B`` samples), the
differences between the samples' outputs are smaller than the standard error of their mean (the spread of a B-sample
mean): what is left of the input's influence is below what sampling noise alone would move the batch's average by.
Where regression targets are known, the spread must also be below ``1/sqrt(B)`` of the targets' spread (a model
that explains less than ``1/B`` of the target variance, the chance level of ``B`` points); where the output is read
as classes, every sample must also get the same predicted class. Such a model gives one answer for every input: a
regulariser that outweighs the data term (a VAE's KL summed over the batch against a reconstruction averaged over
it), dead units, a gate stuck shut.

Example::

    >>> import torch
    >>> start = output_spread(torch.randn(64, 8, generator=torch.Generator().manual_seed(0)))
    >>> collapsed_output(0.001, start, None, samples=64), collapsed_output(0.5 * start, start, None, samples=64)
    (True, False)
"""

from __future__ import annotations

import math
from typing import Optional

import torch


#: Units (output values per sample) averaged at most: a strided subset of a wider output, the same units at every
#: snapshot, so a language model's ``(B, T, 32000)`` logits cost what a small output does.
MAX_UNITS = 4096


def unit_subset(values: torch.Tensor) -> torch.Tensor:
    """``values`` as ``(samples, units)``, keeping at most :data:`MAX_UNITS` evenly strided units (a view)."""
    flat = values.detach().reshape(values.shape[0], -1)
    return flat[:, :: -(-flat.shape[1] // MAX_UNITS)] if flat.shape[1] > MAX_UNITS else flat


def output_spread(values: torch.Tensor) -> Optional[float]:
    """Each unit's standard deviation over the samples (dim 0), averaged over units (at most :data:`MAX_UNITS` of
    them); None below two samples or for a non-float or non-finite output. One host read."""
    if not isinstance(values, torch.Tensor) or values.dim() == 0 or values.shape[0] < 2 or values.numel() == 0:
        return None
    if not values.is_floating_point():
        return None
    v = unit_subset(values).float()
    spread = float(v.std(0).mean())
    return spread if math.isfinite(spread) else None


def collapsed_output(spread: Optional[float], start: Optional[float], target_spread: Optional[float],
                     samples: int, same_class: Optional[bool] = None) -> bool:
    """Whether an output's ``spread`` across ``samples`` samples fell below ``1/sqrt(samples)`` of its ``start``
    (and of ``target_spread`` when known); ``same_class``: whether every sample gets the same predicted class, for
    outputs read as classes (None otherwise)."""
    if spread is None or start is None or not start > 0 or samples < 2 or same_class is False:
        return False
    limit = 1.0 / math.sqrt(samples)
    if not spread < limit * start:
        return False
    return target_spread is None or not target_spread > 0 or spread < limit * target_spread

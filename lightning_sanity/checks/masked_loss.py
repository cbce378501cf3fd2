"""An element-wise loss counted only where a mask is 1, for ``initial-loss``: the elements the loss really compares.

Dense heads often score a few cells of their output map only: CenterNet's offset and size maps at the object
centres, a multi-task head's regression at the labelled rows, a masked autoencoder's patches. The loss is computed
with ``reduction="none"`` and multiplied by a 0/1 mask (``(F.l1_loss(p, t, reduction="none") * mask).sum() /
mask.sum()``) or indexed with it (``loss[mask]``). The targets of the other elements are placeholders (zeros) that
no gradient ever sees: a best constant prediction taken over them is the placeholder itself, and its loss is near
0, so any untrained head looks "far above the best constant". The loss's expectation is taken over the kept elements
alone.

Example::

    >>> import torch
    >>> from lightning_sanity.checks.losses import LossCall
    >>> target = torch.zeros(2, 3, 4)
    >>> target[:, :, 0] = torch.tensor([0.5, 0.5, 2.0])
    >>> mask = torch.zeros(2, 1, 4)
    >>> mask[:, :, 0] = 1
    >>> keep = binary_mask(mask, target.shape)
    >>> masked = masked_call(LossCall("l1", torch.zeros(2, 3, 4), target, reduction="none"), keep)
    >>> tuple(masked.input.shape), masked.target[0].tolist()   # one row per kept cell, one column per channel
    ((2, 3), [0.5, 0.5, 2.0])
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import torch

from lightning_sanity.checks.losses import BINARY, REGRESSION, LossCall

#: Loss kinds whose expectation is a mean over elements of one prediction and one target of the same shape: the
#: kept elements are a smaller batch of the same loss. (Class-index and distribution losses have other shapes.)
ELEMENTWISE_KINDS = REGRESSION + BINARY


def binary_mask(mask: Any, shape: torch.Size) -> Optional[torch.Tensor]:
    """``mask`` broadcast to ``shape`` as booleans, when it is a 0/1 (or boolean) tensor the model does not make,
    that keeps some elements and drops others; else None (a weight map, a model output, a mask of all ones)."""
    if not isinstance(mask, torch.Tensor) or mask.requires_grad or mask.is_complex() or mask.dim() == 0:
        return None
    try:
        keep = torch.broadcast_to(mask.detach(), shape)
    except RuntimeError:
        return None
    if keep.dtype != torch.bool:
        if not bool(((keep == 0) | (keep == 1)).all()):
            return None  # a weight map: not a subset of the elements
        keep = keep != 0
    kept = int(keep.sum())
    return keep if 0 < kept < keep.numel() else None


def masked_call(call: LossCall, keep: torch.Tensor) -> Optional[LossCall]:
    """``call`` restricted to the elements ``keep`` (of the prediction's shape) marks. A mask that keeps or drops
    whole positions (every channel of dimension 1 alike) keeps one column per channel; else the kept elements are
    one column (None when a per-channel ``pos_weight`` cannot follow them there)."""
    x, y = call.input.detach(), call.target.detach()
    weight = call.weight
    if x.dim() >= 2:
        channels = x.shape[1]
        rows = keep.movedim(1, -1).reshape(-1, channels)
        if bool((rows.all(1) == rows.any(1)).all()):
            kept = rows.any(1)

            def take(t: torch.Tensor) -> torch.Tensor:
                return t.movedim(1, -1).reshape(-1, channels)[kept]

            if weight is not None:
                weight = take(torch.broadcast_to(weight.detach(), x.shape))
            return dataclasses.replace(call, input=take(x), target=take(y), weight=weight)
    if call.pos_weight is not None and call.pos_weight.numel() > 1:
        return None
    if weight is not None:
        weight = torch.broadcast_to(weight.detach(), x.shape)[keep]
    return dataclasses.replace(call, input=x[keep], target=y[keep], weight=weight)

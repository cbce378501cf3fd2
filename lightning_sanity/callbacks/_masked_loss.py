"""``initial-loss`` glue for an element-wise loss counted only where a mask is 1 (see
:mod:`lightning_sanity.checks.masked_loss`): the loss inspector tags the output of a ``reduction="none"`` call, and
the first 0/1 mask it is multiplied by (or indexed with) in the first step re-bases that call's figures on the kept
elements.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.callbacks._loss_observation import _Observation
from lightning_sanity.callbacks._step_watch import Tags, function_name
from lightning_sanity.checks import loss_expectations as LE
from lightning_sanity.checks.losses import BINARY
from lightning_sanity.checks.masked_loss import ELEMENTWISE_KINDS, binary_mask, masked_call

#: The ways a mask selects elements of a loss: ``loss * mask`` (either side) and ``loss[mask]``.
_PRODUCTS = frozenset({"mul", "__mul__", "__rmul__", "multiply"})
_INDEXING = frozenset({"__getitem__", "masked_select"})
_TAG = "elementwise_loss"


def watch(tags: Tags, obs: _Observation, result: Any) -> None:
    """Tag ``result``, the per-element output of ``obs``'s call, when a mask applied to it can be followed."""
    call = obs.call
    if (call.reduction == "none" and call.kind in ELEMENTWISE_KINDS and isinstance(result, torch.Tensor)
            and result.shape == call.input.shape == call.target.shape):
        tags.set(result, {_TAG: obs})


def after(tags: Tags, func: Any, args: tuple) -> None:
    """Re-base a tagged loss's figures on the elements the first 0/1 mask applied to it keeps."""
    name = function_name(func)
    if len(args) < 2 or (name not in _PRODUCTS and name not in _INDEXING):
        return
    pairs = ((args[0], args[1]),) if name in _INDEXING else ((args[0], args[1]), (args[1], args[0]))
    for loss, mask in pairs:
        obs = (tags.get(loss) or {}).get(_TAG)
        if obs is None or obs.mask_share is not None or loss.shape != obs.call.input.shape:
            continue
        keep = binary_mask(mask, loss.shape)
        masked = masked_call(obs.call, keep) if keep is not None else None
        if masked is None:
            continue
        obs.call = masked
        obs.mask_share = float(keep.sum()) / keep.numel()
        obs.observed = float(loss.detach().double()[keep].mean())
        obs.expectation = LE.expected_losses(masked)
        if masked.kind in BINARY:
            obs.mean_prediction = LE.mean_prediction(masked)
        return

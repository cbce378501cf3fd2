"""The one place that touches Lightning internals or version-specific behaviour.

Everything here has a public-API fallback, so a Lightning release that moves an attribute degrades a detail
(a missing batch index) instead of breaking training.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch


def current_batch_idx(trainer: Any) -> Optional[int]:
    """Index of the training batch being processed in the current epoch, or None when unknown."""
    try:
        return int(trainer.fit_loop.epoch_loop.batch_idx)
    except (AttributeError, TypeError, ValueError):
        return None


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order; ``[obj]`` when not distributed.

    Must be called on every rank (a collective), so only from hooks that every rank reaches.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def optimizers_of(configured: Any) -> list[torch.optim.Optimizer]:
    """The optimizers in any return form of ``configure_optimizers`` (schedulers are left out).

    Example::

        >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        >>> optimizers_of({"optimizer": opt, "lr_scheduler": None}) == optimizers_of(([opt], [])) == [opt]
        True
    """
    if isinstance(configured, torch.optim.Optimizer):
        return [configured]
    if isinstance(configured, Mapping):
        return optimizers_of(configured.get("optimizer"))
    if isinstance(configured, (list, tuple)):
        if len(configured) == 2 and isinstance(configured[0], (list, tuple)):
            return optimizers_of(list(configured[0]))  # ([optimizers], [schedulers])
        return [opt for item in configured for opt in optimizers_of(item)]
    return []


def loader_epoch_metrics(trainer: Any) -> dict[str, Any]:
    """The epoch-level figures the running evaluation dataloader logged so far, named as ``callback_metrics`` names
    them (``val_loss/dataloader_idx_1``); {} when unknown. With several validation dataloaders Lightning never
    publishes the sanity check's figures (``callback_metrics`` stays empty there), so the validation loss before
    training is read here, at each loader's last sanity batch: the mean the loop computes at that loader's end, once
    and earlier (no batch of that loader follows). Public fallback: nothing read.
    """
    try:
        return dict(trainer._results.metrics(False)["callback"])
    except Exception:  # a Lightning release without this collection: the loss before training stays unknown
        return {}

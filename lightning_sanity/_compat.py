"""The one place that touches Lightning internals or version-specific behaviour.

Everything here has a public-API fallback, so a Lightning release that moves an attribute degrades a detail
(a missing batch index) instead of breaking training.
"""

from __future__ import annotations

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

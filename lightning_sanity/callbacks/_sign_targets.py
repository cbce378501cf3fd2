"""The loss inspector's ``loss-input`` finding for losses whose target is a sign (+1 / -1) fed 0/1 labels (glue, no
math: that is :mod:`lightning_sanity.checks.sign_targets`).

The first step's watch sees the functional call (the ``nn`` modules call it too) before it runs and reads its target
once; later steps cost nothing.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F

from lightning_sanity.checks.sign_targets import ZERO_EFFECT, zero_one_targets
from lightning_sanity.findings import Severity

#: The sign-target losses, by the functional the ``nn`` modules call, with their target's position.
SIGN_TARGET_LOSSES = {
    F.cosine_embedding_loss: ("cosine_embedding_loss", 2),
    F.margin_ranking_loss: ("margin_ranking_loss", 2),
    F.hinge_embedding_loss: ("hinge_embedding_loss", 1),
    F.soft_margin_loss: ("soft_margin_loss", 1),
}


def sign_target_loss(func: Any) -> Optional[tuple[str, int]]:
    """The name and target position of a sign-target loss functional, or None."""
    try:
        return SIGN_TARGET_LOSSES.get(func)
    except TypeError:  # unhashable callables
        return None


def first_call(cb: Any, trainer: Any, func: Any, args: tuple, kwargs: dict, where: Optional[str]) -> Optional[str]:
    """Judge one sign-target loss call of the first step; the ``loss-input`` detail to show when it passes."""
    name, position = SIGN_TARGET_LOSSES[func]
    target = (kwargs or {}).get("target", args[position] if len(args) > position else None)
    if not isinstance(target, torch.Tensor):
        return None
    found = zero_one_targets(target)
    if found is None:
        return f"{name}: targets in {{-1, 1}}"
    cb.report(trainer, "loss-input", Severity.ERROR,
              f"{name} got 0/1 targets ({found['zeros']} of {found['targets']} are 0, none is -1), but it reads its "
              f"target as +1 or -1: {ZERO_EFFECT[name]}.",
              "Map the labels to +1 / -1 before the loss, e.g. `target = 2 * label - 1`.",
              where=where, key="zero-one-sign-targets", data={"loss": name, **found})
    return None

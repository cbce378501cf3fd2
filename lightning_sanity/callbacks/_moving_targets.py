"""Whether the training loss's target moves with training: computed from the model's parameters (a TD target
``r + gamma * V_target(s')``, an EMA teacher's output) by parameters that change during the run. Such a target is
not a fixed function of the batch, so the loss's first level and the first batch's constant-prediction baseline
do not describe later steps: the TD loss of a value function grows as the values it bootstraps from grow.

``loss-trend`` asks this before it reports (:class:`~lightning_sanity.callbacks.loss_dynamics.LossDynamics`). The
lineage of the target comes from the loss inspector's first-step watch (``facts["loss_target_from_model"]``); a
target made only by frozen parameters (a distillation teacher) moves only when those parameters changed, which a
fingerprint of them at the start and at the end of training tells (read twice per fit, off the hot path).

Example::

    >>> import torch
    >>> net = torch.nn.Linear(2, 1).requires_grad_(False)
    >>> start = frozen_fingerprint(net)
    >>> moving_target({"loss_target_from_model": "frozen"}, start, net) is None
    True
    >>> with torch.no_grad():
    ...     _ = net.weight.add_(0.1)
    >>> moving_target({"loss_target_from_model": "frozen"}, start, net)[:40]
    "the loss's target is computed by paramet"
"""

from __future__ import annotations

from typing import Optional

import torch


def _frozen(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p for p in module.parameters() if not p.requires_grad and p.is_floating_point() and p.numel()]


def frozen_fingerprint(module: torch.nn.Module) -> Optional[torch.Tensor]:
    """Sum and norm of every frozen floating-point parameter on the CPU, or None without any. Read at the start and
    the end of training only."""
    frozen = _frozen(module)
    if not frozen:
        return None
    with torch.no_grad():  # reduced in float64 without a float64 copy of a large embedding; one host read
        return torch.stack([torch.stack([p.sum(dtype=torch.float64), torch.linalg.vector_norm(p, dtype=torch.float64)])
                            for p in frozen]).cpu()


def moving_target(facts: dict, start: Optional[torch.Tensor], module: torch.nn.Module) -> Optional[str]:
    """Why the training loss's target moves with training (words for a message), or None when it does not or
    cannot be told."""
    made = facts.get("loss_target_from_model")
    if made == "trained":
        return ("the loss's target is computed from the model's own trained parameters (a bootstrapped target "
                "such as `r + gamma * V(s').detach()`)")
    if made != "frozen" or start is None:
        return None
    now = frozen_fingerprint(module)
    if now is None or now.shape != start.shape:
        return None
    # Any change at all: a frozen teacher's parameters are bit-for-bit what they were; a target network updated by
    # Polyak averaging or periodic copies is not.
    if torch.equal(now, start):
        return None
    return ("the loss's target is computed by parameters outside training that changed during the run (a target "
            "network updated by Polyak averaging or copies, an EMA teacher)")

"""Conditions that come and go: a finding that can be withdrawn when the condition clears.

A check that looks at snapshots (the fixed batch after every N steps) may see a condition early in the run that
later clears by itself: an eval-mode collapse while BatchNorm running statistics with a small momentum are still
near their initial 0/1, for instance. :class:`Episodes` records when the condition began (the step, epoch and
batch of its first snapshot), when it was last seen, and when it cleared, so the check reports a lasting
condition at the step where it began, and a cleared one as ``info`` with the step it cleared, never as a warning.

Also here: :func:`unconverged_batchnorm`, which BatchNorm layers still carry much of their initial running
statistics, the usual cause of such a transient eval-mode collapse.

Example::

    >>> e = Episodes()
    >>> e.update(True, step=5, epoch=0, batch_idx=4)
    True
    >>> e.update(True, step=10, epoch=0, batch_idx=9), e.update(False, step=15, epoch=1, batch_idx=2)
    (False, False)
    >>> e.lasting is None, e.cleared[0].first_step, e.cleared[0].cleared_step
    (True, 5, 15)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from torch import nn

#: A BatchNorm layer's running statistics are unconverged while their initial 0/1 still weighs more than this in
#: them: after ``k`` batches with momentum ``m`` the initial value keeps weight ``(1 - m) ** k`` (0.01 momentum:
#: 0.61 after 50 batches, 0.10 only after 230). Above a tenth, eval mode normalises with statistics that are
#: mostly not the data's.
UNCONVERGED_SHARE = 0.1


@dataclasses.dataclass
class Episode:
    """One stretch of snapshots that showed the condition."""

    first_step: int
    epoch: Optional[int]
    batch_idx: Optional[int]
    last_step: int
    cleared_step: Optional[int] = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


class Episodes:
    """The stretches of snapshots in which a condition held, in order."""

    def __init__(self) -> None:
        self.episodes: list[Episode] = []

    @property
    def current(self) -> Optional[Episode]:
        """The episode still going on at the last snapshot, or None."""
        return self.episodes[-1] if self.episodes and self.episodes[-1].cleared_step is None else None

    def update(self, present: bool, step: int, epoch: Optional[int], batch_idx: Optional[int]) -> bool:
        """Record one snapshot; returns True when it opened a new episode."""
        current = self.current
        if present:
            if current is None:
                self.episodes.append(Episode(step, epoch, batch_idx, step))
                return True
            current.last_step = step
        elif current is not None:
            current.cleared_step = step
        return False

    @property
    def lasting(self) -> Optional[Episode]:
        """The episode still going on at the last snapshot (the condition at the end of the run), or None."""
        return self.current

    @property
    def cleared(self) -> list[Episode]:
        """The episodes that cleared."""
        return [e for e in self.episodes if e.cleared_step is not None]


def unconverged_batchnorm(model: nn.Module, share: float = UNCONVERGED_SHARE) -> list[dict[str, Any]]:
    """BatchNorm layers whose running statistics still hold more than ``share`` of their initial 0/1 values.

    Returns one ``{"name", "momentum", "batches", "initial_share"}`` per such layer (in training mode since the
    start: ``num_batches_tracked`` counts the batches that updated them).

    >>> bn = nn.BatchNorm1d(4, momentum=0.01); bn.num_batches_tracked.fill_(50)
    tensor(50)
    >>> [(d["name"], d["initial_share"]) for d in unconverged_batchnorm(nn.Sequential(bn))]
    [('0', 0.605)]
    """
    found = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.modules.batchnorm._BatchNorm) or not module.track_running_stats:
            continue
        tracked = getattr(module, "num_batches_tracked", None)
        if tracked is None or module.momentum is None:
            continue  # a cumulative average replaces the initial values at the first batch
        batches = int(tracked)
        momentum = float(module.momentum)
        left = (1.0 - momentum) ** batches if 0.0 <= momentum < 1.0 else 0.0
        if left > share:
            found.append({"name": name, "momentum": momentum, "batches": batches, "initial_share": round(left, 3)})
    return found


def batchnorm_advice(layers: list[dict[str, Any]]) -> str:
    """Advice for an eval-mode collapse while ``layers`` (from :func:`unconverged_batchnorm`) are unconverged."""
    first = layers[0]
    names = ", ".join(f"`{d['name']}`" for d in layers[:3]) + (" ..." if len(layers) > 3 else "")
    momentum = first["momentum"]
    steps = int(math.ceil(math.log(UNCONVERGED_SHARE) / math.log(1.0 - momentum))) if 0 < momentum < 1 else None
    wait = f" (about {steps} training batches at momentum {first['momentum']:g})" if steps else ""
    return (f"BatchNorm running statistics are not converged: {names} still hold {first['initial_share']:.0%} of "
            f"their initial mean 0 / variance 1 after {first['batches']} batches, so eval mode normalises with "
            f"statistics that are not the data's. Raise the BatchNorm momentum (PyTorch's default is 0.1) or let "
            f"them warm up{wait} before judging eval outputs; the collapse should clear by itself.")

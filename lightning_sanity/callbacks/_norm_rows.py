"""The norm monitor's host-side records of a step: which parameters had a gradient (:class:`GradPattern`), what a
buffered row holds (:class:`StepRow`) and what the current batch has measured (:class:`BatchState`).

Example::

    >>> import torch
    >>> any_layers([], "has_grad", 2).tolist()
    [False, False]
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch


@dataclasses.dataclass
class GradPattern:
    """Which parameters of an optimizer had a gradient in a step, and the index tensors that go with it."""

    present: Optional[list[int]]  # positions in the optimizer's parameter list; None: all of them
    present_index: Optional[torch.Tensor]  # the same positions on the device (None: all of them)
    update_index: torch.Tensor  # 2L + layer of each parameter with a gradient
    trainable: torch.Tensor  # bool [L], host
    has_grad: torch.Tensor  # bool [L], host
    owned: torch.Tensor  # bool [L], host: layers with a parameter in this optimizer (whose weights it reads)
    uses: int = 0  # steps this pattern was seen in (per-parameter dead-gradient, callbacks/_param_zero.py)


@dataclasses.dataclass
class StepRow:
    """Host-side facts about one buffered optimizer step (known without reading the device)."""

    step: int
    epoch: int
    batch_idx: int
    patterns: list[GradPattern]
    update_valid: Optional[torch.Tensor] = None  # bool [L] when the update was measured in this step
    weighed: Optional[torch.Tensor] = None  # bool [L]: layers whose weight norms were read in this step


@dataclasses.dataclass
class BatchState:
    """What the current training batch has measured so far (several optimizers may step in it)."""

    measure_weights: bool = False
    measure_update: bool = False
    patterns: list[GradPattern] = dataclasses.field(default_factory=list)
    step: Optional[int] = None  # the global step of the batch's first optimizer step; None: none stepped yet
    seen: set[int] = dataclasses.field(default_factory=set)  # id() of the optimizers that stepped
    update_valid: Optional[torch.Tensor] = None


def any_layers(patterns: list[GradPattern], field: str, num_layers: int) -> torch.Tensor:
    if len(patterns) == 1:
        return getattr(patterns[0], field)  # the usual case: one optimizer; callers only read it
    out = torch.zeros(num_layers, dtype=torch.bool)
    for pattern in patterns:
        out |= getattr(pattern, field)
    return out

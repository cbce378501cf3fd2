"""Regression targets out of the output's reach: a bounded activation (ReLU, sigmoid, tanh) as the model's last
operation while the targets lie outside its range. A pure function of the targets' moments for
``dead-activations``; :class:`~lightning_sanity.callbacks.activations.ActivationMonitor` finds the output activation.

Example::

    >>> import torch
    >>> from torch import nn
    >>> lo, hi = output_range(nn.ReLU())
    >>> m = unreachable_moments(torch.tensor([-1.0, -0.5, 0.5, 1.0]), lo, hi)
    >>> round(unreachable_share(m), 3)  # (1 + 0.25) / 4 over a variance of 0.625
    0.5
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

#: The share of the targets' variance out of the output's reach that is a finding: the margin by which loss-trend
#: says a loss beat its best constant (``BASELINE_MARGIN``). An output that can never remove this much of the best
#: constant's squared error cannot fit the task, whatever it learns.
UNREACHABLE_SHARE = 0.2


def output_range(module: nn.Module) -> Optional[tuple[float, float]]:
    """The range of a bounded activation's outputs, or None for unbounded or unknown modules.

    >>> output_range(nn.ReLU()), output_range(nn.Tanh()), output_range(nn.Linear(2, 2))
    ((0.0, inf), (-1.0, 1.0), None)
    """
    if isinstance(module, nn.Hardtanh):  # ReLU6 too
        return float(module.min_val), float(module.max_val)
    if isinstance(module, nn.ReLU):
        return 0.0, math.inf
    if isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)):
        return 0.0, 1.0
    if isinstance(module, nn.Tanh):
        return -1.0, 1.0
    return None


def unreachable_moments(target: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """``[count, sum, sum of squares, sum of squared distances to [low, high]]`` of the targets, on their device."""
    y = target.detach().double().reshape(-1)
    gap = (low - y).clamp_min(0) + (y - high).clamp_min(0)
    return torch.stack([y.new_tensor(float(y.numel())), y.sum(), (y * y).sum(), (gap * gap).sum()])


def unreachable_share(moments: torch.Tensor) -> float:
    """The least squared error an output confined to the range leaves (every prediction at the nearest reachable
    value), as a share of the targets' variance (the best constant's squared error); 0 without spread."""
    count, total, squares, gaps = (float(v) for v in moments.cpu())
    if count < 2:
        return 0.0
    variance = squares / count - (total / count) ** 2
    return gaps / count / variance if variance > 0 else 0.0

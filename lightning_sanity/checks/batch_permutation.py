"""``batch-mixing`` by permutation: reorder the samples of the batch; each sample's output must not change.

The gradient probe and the forward-value probe move one sample's *float* input (or its embeddings) and watch the
others. Mixing that runs through integers carries neither a gradient nor a proportional change: position ids from
``attention_mask.cumsum(0)`` (a running count *down the batch*) make each sample's positions depend on how many
rows above it are padding. Reordering the batch changes every row's "rows above": the outputs of the reordered
batch, put back in order, differ for most samples.

What legitimately depends on the order is excluded before the judgement: noise drawn in ``forward`` (tied to the
row index, not the sample: the caller compares a second seed when the mismatch is wide), in-batch similarity
matrices ``(B, B)`` (the second axis is reordered too), and capacity-limited expert routing (which tokens overflow
depends on the order: a model with router modules is not judged). Round-off of batched kernels (a row computed in
another block) stays near 1e-6 of the output; the rule asks for a change beyond :data:`RELATIVE` of the sample's own
output, for more than half of the samples.

Example::

    >>> import torch
    >>> x = torch.randn(6, 4)
    >>> own, pooled = (lambda t: t * 2), (lambda t: t.cumsum(0))
    >>> judge(own(x), unroll(own(x.roll(1, 0)), 6))["mixing"]
    False
    >>> judge(pooled(x), unroll(pooled(x.roll(1, 0)), 6))["mixing"]
    True
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

#: a sample's output changed when it moves by more than this share of its own size (round-off is near 1e-6).
RELATIVE = 1e-3
#: class-name parts of modules that route samples with a capacity (their output depends on the batch's order).
ROUTERS = ("router", "moe", "expert", "switch")


def routed(model: nn.Module) -> Optional[str]:
    """The first module whose class name says it routes tokens to experts, or None."""
    for name, module in model.named_modules():
        kind = type(module).__name__.lower()
        if any(part in kind for part in ROUTERS):
            return name or type(module).__name__
    return None


def roll(t: torch.Tensor, size: int) -> torch.Tensor:
    """``t`` with its samples moved one place down (sample i to place i + 1), when its first dimension is
    ``size``."""
    return t.roll(1, 0) if t.dim() > 0 and t.shape[0] == size else t


def unroll(out: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Readings of the output of the rolled batch, put back in the original order: along the first axis, and when
    the second axis is the batch too (``(B, B)`` similarities), along both."""
    back = out.roll(-1, 0)
    readings = [back]
    if out.dim() >= 2 and out.shape[1] == size:
        readings.append(back.roll(-1, 1))
    return readings


def judge(base: torch.Tensor, readings: Any) -> dict[str, Any]:
    """``{"changed", "samples", "largest", "mixing"}``: samples whose output changed beyond :data:`RELATIVE` of its
    size, in the reading that changes fewest; mixing when more than half did."""
    if isinstance(readings, torch.Tensor):
        readings = [readings]
    n = int(base.shape[0])
    rows = base.detach().double().reshape(n, -1)
    scale = rows.norm(dim=1).clamp_min(float(rows.norm(dim=1).mean()) * 1e-3 + 1e-12)
    best: Optional[dict[str, Any]] = None
    for reading in readings:
        if reading.shape != base.shape:
            continue
        change = (reading.detach().double().reshape(n, -1) - rows).norm(dim=1) / scale
        result = {"changed": int((change > RELATIVE).sum()), "samples": n, "largest": float(change.max())}
        if best is None or result["changed"] < best["changed"]:
            best = result
    if best is None:
        return {"changed": 0, "samples": n, "largest": 0.0, "mixing": False}
    best["mixing"] = 2 * best["changed"] > n
    return best

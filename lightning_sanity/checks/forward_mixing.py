"""``batch-mixing`` from forward values: the judgement behind :mod:`lightning_sanity.callbacks._forward_mixing`.

Sample 0's input is moved by a small relative amount ``r`` (and by ``r / 2``), every other input left as it is, the
same RNG seed drawn before each call. A model whose samples are independent gives the other samples bit-identical
outputs: the same kernels on the same rows. Statistics taken over the batch move every other sample, and by an amount
proportional to ``r`` (a smooth function of the batch), so halving ``r`` roughly halves their change. A discrete
choice that depends on the batch (capacity-limited expert routing, a top-k over the batch) is a design, not a slip:
a small move rarely crosses one of its boundaries, and when it does the change is a jump (the same at ``r`` and
``r / 2``, or none at ``r / 2``) and reaches a few samples only, so the rule leaves it alone.

Example::

    >>> import torch
    >>> x = torch.randn(5, 3)
    >>> moved = x.clone(); moved[0] *= 1.05
    >>> half = x.clone(); half[0] *= 1.025
    >>> own = lambda t: t * 2
    >>> pooled = lambda t: t - t.mean(0)
    >>> judge([("batch-first", own(x), own(moved), own(half))])["mixing"]
    False
    >>> judge([("batch-first", pooled(x), pooled(moved), pooled(half))])["mixing"]
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lightning_sanity.checks.flow import LEAK_TOLERANCE

RELATIVE = 0.05
"""How far sample 0's input is moved (scaled by ``1 + RELATIVE``, plus noise of ``RELATIVE`` times its spread):
far above round-off, small enough that discrete choices (routing, top-k) rarely flip."""

PROPORTIONAL = (1.25, 3.2)
"""Bounds on (others' change at ``r``) / (others' change at ``r / 2``): 2 for a smooth dependence, with room for
curvature and low-precision rounding; a jump gives 1 (or no change at ``r / 2``)."""


def _changes(base: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
    """Per-sample norm of the output change, ``(B,)``."""
    return (moved.double() - base.double()).norm(dim=1)


def judge_layout(base: torch.Tensor, full: torch.Tensor, half: torch.Tensor,
                 tolerance: float = LEAK_TOLERANCE) -> dict[str, Any]:
    """Figures of one per-sample reading ``(B, -1)`` of the outputs as given (``base``), with sample 0 moved by
    ``r`` (``full``) and by ``r / 2`` (``half``)."""
    d_full, d_half = _changes(base, full), _changes(base, half)
    total = float(d_full.sum())
    others = float(d_full[1:].sum())
    share = others / total if total > 0 else 0.0
    moved = int((d_full[1:] > 0).sum())
    half_others = float(d_half[1:].sum())
    ratio = others / half_others if half_others > 0 else float("inf")
    mixing = (share > tolerance and moved == d_full.shape[0] - 1
              and PROPORTIONAL[0] <= ratio <= PROPORTIONAL[1])
    order = torch.argsort(d_full[1:], descending=True)[:5] + 1
    return {"leak": share, "moved": moved, "others_count": int(d_full.shape[0] - 1), "ratio": ratio,
            "mixing": bool(mixing), "others": [int(i) for i in order.tolist() if float(d_full[i]) > 0]}


def judge(layouts: Sequence[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]],
          tolerance: float = LEAK_TOLERANCE) -> dict[str, Any]:
    """The forward-value verdict over candidate readings ``(layout, base, full, half)`` of the output: mixing only
    when every reading mixes (a flattened ``(B*T, C)`` output is read two ways, one of which is right)."""
    results = [{**judge_layout(b, f, h, tolerance), "layout": name} for name, b, f, h in layouts]
    clean = [r for r in results if not r["mixing"]]
    if clean:
        return min(clean, key=lambda r: r["leak"])
    return results[0]

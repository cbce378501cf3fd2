"""Accumulating gradients under manual optimization: ``.grad`` never reset between optimizer steps.

With ``automatic_optimization = False`` the user calls ``opt.zero_grad()``; forget it and every backward adds to
the gradients of all earlier steps, so the gradient the optimizer sees ``s`` steps after the last reset is the sum
of ``s`` batch gradients. Its norm then grows with ``s``, the number of steps since the last zero (as ``s`` for
gradients that agree, as ``sqrt(s)`` for pure noise), and smoothly: adding one batch gradient to a sum of ``s``
changes its norm by at most about ``1/s``, while a fresh batch gradient's norm jumps by tens of percent from batch
to batch (measured: median 23 % on a healthy LSTM on digits, 3-7 % when the gradients pile up).

Lightning itself resets ``.grad`` before every validation run (``on_validation_model_zero_grad``), so a run that
never zeroes shows one segment of growing norms per validation interval, and the norm falls back at each reset.

:class:`ResetWatch` records, per optimizer, the segments of steps that read carried-over gradients (``.grad`` not
None at the step's backward); :func:`judge_accumulating` judges the norms against them:

- several segments: in the median segment the norm grew at least :data:`GROWTH` x from its first eighth to its
  last, it fell back at least :data:`GROWTH` x at the median reset (a fresh gradient does not know that
  validation ran; a sum of gradients starts again from one), and it changed smoothly;
- one segment (no reset ever, e.g. no validation): rising on most steps, smooth, and :data:`GROWTH` x over it.

``zero_grad(set_to_none=False)`` leaves ``.grad`` a zero tensor, so its steps count as carried over, but the norm
of a fresh gradient neither grows smoothly nor falls at a reset: silent. Accumulating on purpose (``step`` and
``zero_grad`` together every N backwards) gives every step fresh gradients: silent.

Example::

    >>> import torch
    >>> noise = 0.02 * torch.randn(60, generator=torch.Generator().manual_seed(0))
    >>> piling = torch.cumsum(torch.full((60,), 0.2) + noise, 0)
    >>> judge_accumulating(piling, list(range(60)), [(0, 59)])["growth"] > 3
    True
    >>> judge_accumulating(piling, list(range(60)), []) is None   # every step had fresh gradients
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import torch

#: Steps with carried-over gradients needed before judging: the smoothness bound 1/s means little for a few.
MIN_STEPS = 20
#: A segment shorter than this has no first and last eighth to compare.
MIN_SEGMENT = 8
#: One segment only: the norm rose on at least this share of the steps (as the "steady" of the overfit recipe).
RISING_SHARE = 0.8
#: Median step-to-step relative change at most this (a fresh batch gradient: 0.2-0.5; a sum of s: about 1/s).
SMOOTH_CHANGE = 0.15
#: Growth over a segment, and fall at a reset, at least this: a sum of s gradients that are pure noise grows as
#: sqrt(s), and from the first eighth of a segment to its last that is sqrt(8) ~ 2.8 already.
GROWTH = 3.0
#: Segments kept; beyond this many resets the user zeroes often (on purpose) and nothing is judged.
MAX_SEGMENTS = 4096


class ResetWatch:
    """Per optimizer, the spans of optimizer steps whose gradients were carried over from an earlier step.

    ``before_backward`` runs at each ``manual_backward`` (Lightning's ``on_before_backward``): a watched parameter
    whose ``.grad`` is None then starts fresh gradients. ``stepped(optimizer, step)`` runs at each optimizer step,
    with the row's step as the norm history records it.

    >>> p = torch.nn.Parameter(torch.ones(2)); opt = torch.optim.SGD([p], lr=0.1)
    >>> watch = ResetWatch([opt])
    >>> for step in range(4):
    ...     watch.before_backward(); p.grad = torch.ones(2) if p.grad is None else p.grad + 1; watch.stepped(opt, step)
    >>> watch.segments[id(opt)]
    [[0, 3]]
    """

    def __init__(self, optimizers: Iterable[torch.optim.Optimizer]) -> None:
        self.watched: dict[int, torch.Tensor] = {}
        for opt in optimizers:
            first = next((p for g in opt.param_groups for p in g["params"] if p.requires_grad), None)
            if first is not None:
                self.watched[id(opt)] = first
        self._fresh = {key: True for key in self.watched}  # .grad was None at the latest backward
        self._carried = {key: 0 for key in self.watched}  # steps that read the current gradients already
        self._start: dict[int, Optional[int]] = {key: None for key in self.watched}
        self.segments: dict[int, list[list[int]]] = {key: [] for key in self.watched}
        self.overflow = False

    def before_backward(self) -> None:
        for key, param in self.watched.items():
            if param.grad is None:
                self._fresh[key] = True

    def stepped(self, optimizer: torch.optim.Optimizer, step: Optional[int]) -> None:
        key = id(optimizer)
        if key not in self.watched or step is None:
            return
        if self._fresh[key]:
            self._fresh[key], self._carried[key], self._start[key] = False, 0, step
        self._carried[key] += 1
        if self._carried[key] < 2:
            return
        segments = self.segments[key]
        if segments and segments[-1][0] == self._start[key]:
            segments[-1][1] = step
        elif len(segments) < MAX_SEGMENTS:
            segments.append([self._start[key], step])
        else:
            self.overflow = True


def judge_accumulating(norms: torch.Tensor, steps: Sequence[int], segments: Sequence[Sequence[int]]
                       ) -> Optional[dict[str, Any]]:
    """Figures of a gradient norm that piles up within the segments of carried-over gradients, or None.

    ``norms`` and ``steps`` are the history's rows (one per recorded optimizer step); ``segments`` the
    ``[first, last]`` steps of each span that read carried-over gradients (:class:`ResetWatch`).
    """
    values = norms.double().tolist()
    groups: list[list[float]] = []
    k = 0
    for first, last in segments:
        while k < len(steps) and steps[k] < first:
            k += 1
        group = []
        while k < len(steps) and steps[k] <= last:
            if math.isfinite(values[k]) and values[k] > 0:
                group.append(values[k])
            k += 1
        if len(group) >= 2:
            groups.append(group)
    if sum(len(g) for g in groups) < MIN_STEPS:
        return None
    pairs = [(a, b) for g in groups for a, b in zip(g, g[1:])]
    rising = sum(b > a for a, b in pairs) / len(pairs)
    change = _median([abs(b - a) / a for a, b in pairs])
    judged = [g for g in groups if len(g) >= MIN_SEGMENT]
    if not judged or change > SMOOTH_CHANGE:
        return None
    growth = _median([_tail(g) / _head(g) for g in judged])
    figures = {"growth": round(growth, 3), "rising_share": round(rising, 3), "median_change": round(change, 4),
               "steps": sum(len(g) for g in groups), "segments": len(groups), "grad_norm": _tail(groups[-1])}
    if growth < GROWTH:
        return None
    if len(judged) >= 2:
        # At a reset the sum starts again from one gradient: the norm falls back; a fresh gradient's does not.
        fall = _median([a[-1] / b[0] for a, b in zip(groups, groups[1:])])
        return {**figures, "fall_at_reset": round(fall, 3)} if fall >= GROWTH else None
    # Never reset: nothing to fall back; the norm must rise step after step instead.
    return figures if rising >= RISING_SHARE else None


def find_accumulating(watch: ResetWatch, grad_sq: torch.Tensor, steps: Sequence[int],
                      owned: dict[int, torch.Tensor], optimizers: Sequence[Any]) -> Optional[dict[str, Any]]:
    """The first optimizer whose gradients pile up, judged on the norm of the layers it owns, with its figures.

    ``grad_sq`` is the norm history (steps x layers, squared), ``owned`` each optimizer's layers (by id).
    """
    if watch.overflow:
        return None
    for i, opt in enumerate(optimizers):
        key = id(opt)
        if key not in watch.watched or key not in owned or not watch.segments[key]:
            continue
        norms = grad_sq[:, owned[key]].sum(1).sqrt()
        found = judge_accumulating(norms, steps, watch.segments[key])
        if found is not None:
            kind = type(opt).__name__
            name = f"optimizer {i} ({kind})" if len(optimizers) > 1 else f"the optimizer ({kind})"
            return {**found, "optimizer": name}
    return None


def accumulating_message(piling: dict[str, Any]) -> tuple[str, str]:
    """The finding's message and advice for :func:`find_accumulating`'s figures."""
    how = (f"fell back {piling['fall_at_reset']:.3g}x at the median reset of `.grad` (Lightning resets it before "
           "every validation)"
           if "fall_at_reset" in piling else f"rose on {piling['rising_share']:.0%} of the steps")
    message = (f"Gradients accumulate across steps: under manual optimization the gradients of {piling['optimizer']} "
               f"were not reset between optimizer steps, and their norm grew with the number of steps since the last "
               f"reset: {piling['growth']:.3g}x within a stretch without reset (median of {piling['segments']}, "
               f"{piling['steps']} steps in all); it {how}, and changed by a median {piling['median_change']:.1%} "
               "per step, where a fresh batch gradient changes by tens of percent: each step adds to the sum of all "
               "earlier gradients.")
    advice = ("Call `opt.zero_grad()` in training_step for every optimizer (before `self.manual_backward(loss)` or "
              "after `opt.step()`); to accumulate on purpose, call `opt.step()` and `opt.zero_grad()` together every "
              "N backward passes.")
    return message, advice


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _head(group: list[float]) -> float:
    k = max(1, len(group) // 8)
    return _median(group[:k])


def _tail(group: list[float]) -> float:
    k = max(1, len(group) // 8)
    return _median(group[-k:])

"""The judgements over per-layer gradient norms, weight norms and update ratios, and their thresholds.

Every judgement here is a pure function over per-step histories (rows = optimizer steps, columns = layers, the
figures being per-layer sums of squares from :mod:`lightning_sanity.checks.layers`), unit-tested on tensors;
the norm monitor (:mod:`lightning_sanity.callbacks.norms`) decides when to call them.

Example::

    >>> import torch
    >>> gradient_spike(torch.ones(20), 5000.0)  # 5000x the running median of 1
    5000.0
"""

from __future__ import annotations

import bisect

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Optional

import torch

# --------------------------------------------------------------------------- thresholds and their sources
#
# Rules of thumb in the practice write-ups and in CS231n's "Neural Networks Part 3" notes (babysitting the
# learning process): a healthy update-to-weight ratio is around 1e-3 per step; gradients many orders of
# magnitude below the weights (or below later layers) mean vanishing gradients; gradient norms jumping by
# orders of magnitude, or weight norms that keep growing, announce divergence. Published detectors fire at
# mean |grad| below about 1e-7. These rules are rough, and the suite must stay silent on healthy runs of every
# kind, so each threshold below sits far outside what healthy runs of MLPs, CNNs with BatchNorm, LSTMs and
# Transformers (Adam and SGD, schedules, clipping, accumulation) showed in this project's tests.

#: Steps a layer must be observed before any judgement about it.
MIN_STEPS = 5
#: vanishing-gradient: a layer's RMS gradient element below this is vanishingly small. 1e-7 is the mean |grad|
#: threshold published detectors use; RMS >= mean |g|, so RMS < 1e-7 is the stricter (quieter) form.
VANISHING_RMS = 1e-7
#: vanishing-gradient: ... AND its ||g||/||w|| at least this far (4 orders of magnitude) below the largest
#: ||g||/||w|| of the model's layers, so that a run whose gradients all shrink together (a converged model,
#: tiny targets) is not called vanishing.
VANISHING_RELATIVE = 1e-4
#: the conditions must hold on at least this fraction of the observed steps ("sustained").
SUSTAINED_FRACTION = 0.8
#: exploding-gradient: a spike is a global gradient norm at least 1000x (3 orders of magnitude) the running
#: median of the steps before it ...
SPIKE_FACTOR = 1e3
#: ... and at least 10x anything seen before, so that a converged model's rare hard batch (tiny median, early
#: norms far larger) is not a spike.
SPIKE_OVER_MAX = 10.0
#: exploding-gradient: the running-median test needs this many earlier finite steps; a spike before that is
#: judged at the end against the median of the whole run.
SPIKE_WARMUP = 5
#: exploding-gradient: "10x above the level before" is measured against the largest of the first this many
#: steps (the early, large gradients of a fresh model), not against every earlier step: an explosion that ramps
#: up over several steps never sits 10x above its own previous step.
SPIKE_EARLY = 20
#: exploding-gradient, sustained growth: the recent median is 100x the lowest earlier window median and 10x
#: the first window's, and still rising.
GROWTH_FACTOR = 1e2
#: weight-growth: the weight norm multiplied by more than this since the first step ...
WEIGHT_GROWTH_FACTOR = 10.0
#: ... and still rising: up at least 10% over the last quarter of the history.
WEIGHT_STILL_RISING = 1.1
#: weight-growth: layers starting with an RMS weight element below this (zero-initialised layers, LoRA's B)
#: have no meaningful starting norm to grow from.
WEIGHT_MIN_START_RMS = 1e-6
#: update-ratio: ||dw||/||w|| at or above this, sustained, means the learning rate is far too high. CS231n's
#: healthy value is about 1e-3; Adam at lr=1e-2 on small default-initialised layers shows up to about 0.15 on
#: its first steps, so the threshold sits an order of magnitude above that: an update as large as the weights.
UPDATE_TOO_LARGE = 1.0
#: update-ratio: at or below this, sustained, with non-zero gradients, the weights practically do not move.
#: Four orders of magnitude below CS231n's 1e-3.
UPDATE_TOO_SMALL = 1e-7
#: update-ratio: a too-large update must be seen on at least this many measurements (not a single blip).
UPDATE_LARGE_REPEATS = 2
#: update-ratio: "too small" needs this many measurements of a layer.
UPDATE_MIN_MEASUREMENTS = 3

# --------------------------------------------------------------------------- dead-gradient


@dataclasses.dataclass
class GradientCounts:
    """Per-layer counts of optimizer steps, for dead-gradient.

    ``observed``: steps in which the layer had a trainable parameter in a stepping optimizer;
    ``missing``: of those, steps in which none of its trainable parameters had a gradient (``.grad is None``);
    ``zero``: steps in which it had gradients and all were exactly zero;
    ``zero_tail``: how many of the latest observed steps in a row were zero or missing;
    ``first_step``: the global step of the first observation.
    """

    observed: torch.Tensor
    missing: torch.Tensor
    zero: torch.Tensor
    zero_tail: torch.Tensor
    #: ``[layers, 3]``: (global step, epoch, batch index) of the first step of the current dead tail, -1 if none.
    dead_since: Optional[torch.Tensor] = None

    @classmethod
    def empty(cls, num_layers: int) -> "GradientCounts":
        z = torch.zeros(num_layers, dtype=torch.long)
        return cls(z.clone(), z.clone(), z.clone(), z.clone(), torch.full((num_layers, 3), -1, dtype=torch.long))

    def update(self, trainable: torch.Tensor, present: torch.Tensor, grad_sq: torch.Tensor,
               where: Optional[torch.Tensor] = None) -> None:
        """Add steps (rows): ``trainable``/``present`` bool and ``grad_sq`` float, each ``[steps, layers]``;
        ``where``: ``[steps, 3]`` (global step, epoch, batch index) of each row, to locate where a layer died.

        >>> c = GradientCounts.empty(2)
        >>> c.update(torch.tensor([[True, True]]), torch.tensor([[True, False]]), torch.tensor([[0.0, 0.0]]))
        >>> c.observed.tolist(), c.missing.tolist(), c.zero.tolist(), c.zero_tail.tolist()
        ([1, 1], [0, 1], [1, 0], [1, 1])
        """
        if trainable.shape[0] == 0:
            return
        missing = trainable & ~present
        zero = trainable & present & (grad_sq == 0)
        # A non-finite gradient is not a dead one; only a finite, non-zero norm resets the tail.
        alive = trainable & present & (grad_sq != 0)
        self.observed += trainable.long().sum(0)
        self.missing += missing.long().sum(0)
        self.zero += zero.long().sum(0)
        dead = (missing | zero).long()
        row = torch.arange(trainable.shape[0]).unsqueeze(1)
        last_alive = torch.where(alive, row, torch.full_like(row, -1)).amax(dim=0)
        since_alive = (dead * (row > last_alive)).sum(0)
        if where is not None and self.dead_since is not None:
            # The first dead row after the last live one starts the current dead tail, unless the tail goes on
            # from an earlier chunk.
            after = dead.bool() & (row > last_alive)
            first = after.long().argmax(dim=0)
            started_here = after.any(dim=0) & ((last_alive >= 0) | (self.zero_tail == 0))
            since = torch.where(started_here.unsqueeze(1), where.long()[first], self.dead_since)
            self.dead_since = torch.where((since_alive == 0).unsqueeze(1) & (last_alive >= 0).unsqueeze(1),
                                          torch.full_like(since, -1), since)
        self.zero_tail = torch.where(last_alive >= 0, since_alive, self.zero_tail + since_alive)


def dead_layers(counts: GradientCounts, min_steps: int = MIN_STEPS) -> dict[str, list[int]]:
    """Layers whose gradient was dead, by kind.

    - ``"missing"``: no gradient (``None``) on every observed step: the layer is cut off from the loss
      (a ``.detach()``, an integer op such as argmax) or never used in training;
    - ``"zero"``: gradients exactly zero on every observed step (zero-weighted loss, ``torch.round`` in the path,
      all-zero initialisation, every ReLU after it dead), or missing on some steps and zero on the rest;
    - ``"died"``: alive at first, then zero or missing on every step of at least the last half of the run.

    >>> c = GradientCounts.empty(3)
    >>> t = torch.ones(6, 3, dtype=torch.bool)
    >>> p = torch.tensor([[True, False, True]] * 6)
    >>> g = torch.tensor([[1.0, 0.0, 0.0]] * 6)
    >>> c.update(t, p, g)
    >>> dead_layers(c)
    {'missing': [1], 'zero': [2], 'died': []}
    """
    enough = counts.observed >= min_steps
    all_dead = enough & (counts.missing + counts.zero == counts.observed)
    missing = all_dead & (counts.missing == counts.observed)
    zero = all_dead & ~missing
    died = enough & ~all_dead & (counts.zero_tail >= torch.clamp(counts.observed // 2, min=min_steps))
    return {
        "missing": missing.nonzero().flatten().tolist(),
        "zero": zero.nonzero().flatten().tolist(),
        "died": died.nonzero().flatten().tolist(),
    }


# --------------------------------------------------------------------------- vanishing-gradient


def relative_gradients(grad_sq: torch.Tensor, weight_sq: torch.Tensor) -> torch.Tensor:
    """``||g|| / ||w||`` per step and layer; NaN where the weight norm is zero or a figure is not finite."""
    ratio = grad_sq.sqrt() / weight_sq.sqrt()
    return torch.where(torch.isfinite(ratio) & (weight_sq > 0), ratio, torch.full_like(ratio, math.nan))


def vanishing_layers(
    grad_sq: torch.Tensor,
    weight_sq: torch.Tensor,
    numels: Sequence[int],
    eligible: torch.Tensor,
    present: Optional[torch.Tensor] = None,
    min_steps: int = MIN_STEPS,
    *,
    rms_limit: float = VANISHING_RMS,
    relative_limit: float = VANISHING_RELATIVE,
) -> list[tuple[int, float, float]]:
    """Layers whose gradients vanish: ``(layer, median relative gap, median RMS gradient)`` for each.

    On at least :data:`SUSTAINED_FRACTION` of the steps, the layer's RMS gradient element is below
    :data:`VANISHING_RMS` AND its ``||g||/||w||`` is below :data:`VANISHING_RELATIVE` times the largest
    ``||g||/||w||`` among the eligible layers of that step. Layers with exactly zero gradients are
    dead-gradient's, not vanishing.

    Args:
        grad_sq, weight_sq: ``[steps, layers]`` sums of squares.
        numels: number of elements per layer.
        eligible: bool ``[layers]``: layers judged, and used as reference (weight-matrix layers).
        present: bool ``[steps, layers]``: the layer had gradients in that step (default: all).
    """
    if grad_sq.shape[0] < min_steps:
        return []
    rel = relative_gradients(grad_sq, weight_sq)
    mask = eligible.unsqueeze(0) & torch.isfinite(rel) & (grad_sq > 0)
    if present is not None:
        mask &= present
    reference = torch.where(mask, rel, torch.full_like(rel, -math.inf)).amax(dim=1, keepdim=True)
    rms = grad_sq.sqrt() / torch.tensor(list(numels), dtype=grad_sq.dtype).clamp(min=1).sqrt()
    vanishing = mask & (rms < rms_limit) & (rel < relative_limit * reference)
    steps = mask.sum(0)
    hits = vanishing.sum(0)
    out = []
    for layer in ((steps >= min_steps) & (hits >= SUSTAINED_FRACTION * steps)).nonzero().flatten().tolist():
        rows = vanishing[:, layer]
        gap = (rel[rows, layer] / reference[rows, 0]).median().item()
        out.append((layer, gap, rms[rows, layer].median().item()))
    return out


# --------------------------------------------------------------------------- exploding-gradient


def iterates_within_step(optimizer: Any) -> bool:
    """Whether one ``optimizer.step()`` runs several iterations of its own (L-BFGS: ``max_iter`` closure calls and a
    line search): its gradients are read at points it converged to, so a step's gradient far above their median and
    an update as large as the weights are its method, not an explosion.

    >>> iterates_within_step(torch.optim.LBFGS([torch.zeros(1, requires_grad=True)]))
    True
    >>> iterates_within_step(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1))
    False
    """
    defaults = getattr(optimizer, "defaults", None)
    steps = defaults.get("max_iter", 1) if isinstance(defaults, dict) else 1
    return isinstance(steps, int) and steps > 1


def gradient_spike(history: torch.Tensor, value: float, window: int = 200, *,
                   factor: float = SPIKE_FACTOR, reference: Optional[float] = None) -> Optional[float]:
    """How many times ``value`` exceeds the running median of ``history`` when that is a spike, else None.

    A spike is at least :data:`SPIKE_FACTOR` times the median of the last ``window`` finite values AND
    :data:`SPIKE_OVER_MAX` times ``reference`` (default: every earlier value), after at least
    :data:`SPIKE_WARMUP` finite values.

    >>> h = torch.tensor([1.0, 1.2, 0.9, 1.1, 1.0, 0.8])
    >>> gradient_spike(h, 5e3)
    5000.0
    >>> gradient_spike(h, 50.0) is None
    True
    """
    finite = history[torch.isfinite(history)]
    if finite.numel() < SPIKE_WARMUP or not math.isfinite(value):
        return None
    median = finite[-window:].median().item()
    if median <= 0:
        return None
    level = finite.max().item() if reference is None else reference
    if value >= factor * median and value >= SPIKE_OVER_MAX * level:
        return value / median
    return None


def sustained_growth(norms: torch.Tensor, windows: int = 8, min_window: int = 4, *,
                     factor: float = GROWTH_FACTOR) -> Optional[float]:
    """The factor by which the norm grew, when it grew by orders of magnitude and is still rising; else None.

    The history is cut into ``windows`` windows (each at least ``min_window`` steps); growth means the last
    window's median is at least :data:`GROWTH_FACTOR` times the lowest earlier window median, at least
    :data:`SPIKE_OVER_MAX` times the first window's, and above the window before it.

    >>> sustained_growth(torch.logspace(0, 4, 40)) > 100
    True
    >>> sustained_growth(torch.ones(40)) is None
    True
    """
    finite = norms[torch.isfinite(norms)]
    size = max(min_window, finite.numel() // windows)
    count = finite.numel() // size
    if count < 3:
        return None
    medians = finite[finite.numel() - count * size:].reshape(count, size).median(dim=1).values
    last, lowest, first = medians[-1].item(), medians[:-1].min().item(), medians[0].item()
    if lowest <= 0 or first <= 0:
        return None
    if last >= factor * lowest and last >= SPIKE_OVER_MAX * first and last > medians[-2].item():
        return last / lowest
    return None


# --------------------------------------------------------------------------- weight-growth


def row_at(index: int, steps: Optional[Sequence[int]]) -> int:
    """The row standing where row ``index`` would in an evenly spaced history: by global step when ``steps`` (each
    row's step) are given, since strided rows are denser in the window at the start (``lightning_sanity/stride.py``).

    >>> row_at(2, None), row_at(2, [0, 1, 2, 3, 4]), row_at(2, [0, 1, 2, 3, 40])
    (2, 2, 4)
    """
    if not steps or len(steps) < 2:
        return index
    target = round(steps[0] + index / (len(steps) - 1) * (steps[-1] - steps[0]))
    return min(bisect.bisect_left(steps, target), len(steps) - 1)


def growing_layers(weight_sq: torch.Tensor, numels: Sequence[int], min_steps: int = MIN_STEPS * 2, *,
                   factor: float = WEIGHT_GROWTH_FACTOR, steps: Optional[Sequence[int]] = None
                   ) -> list[tuple[int, float]]:
    """Layers whose weight norm grows without bound: ``(layer, growth factor since the first step)`` for each.

    Growth means the latest weight norm is more than :data:`WEIGHT_GROWTH_FACTOR` times the first one and
    still rising: at least :data:`WEIGHT_STILL_RISING` times the norm three quarters into the history.

    >>> w = torch.cat([torch.ones(10, 1), torch.logspace(0, 4, 10).unsqueeze(1)], dim=1) ** 2
    >>> [(layer, round(f)) for layer, f in growing_layers(w, [1, 1])]
    [(1, 10000)]
    """
    rows = weight_sq.shape[0]
    if rows < min_steps:
        return []
    norms = weight_sq.sqrt()
    first, last, quarter = norms[0], norms[-1], norms[row_at((3 * rows) // 4 - 1, steps)]
    start_rms = first / torch.tensor(list(numels), dtype=norms.dtype).clamp(min=1).sqrt()
    ok = torch.isfinite(last) & torch.isfinite(quarter) & (start_rms >= WEIGHT_MIN_START_RMS)
    grew = ok & (last > factor * first) & (last >= WEIGHT_STILL_RISING * quarter)
    return [(layer, (last[layer] / first[layer]).item()) for layer in grew.nonzero().flatten().tolist()]


# --------------------------------------------------------------------------- update-ratio


def update_ratio_verdicts(
    update_sq: torch.Tensor,
    weight_sq: torch.Tensor,
    valid: torch.Tensor,
    min_measurements: int = UPDATE_MIN_MEASUREMENTS,
    *,
    too_large: float = UPDATE_TOO_LARGE,
    too_small: float = UPDATE_TOO_SMALL,
    zero_start: Optional[torch.Tensor] = None,
) -> dict[str, list[tuple[int, float]]]:
    """Layers whose update-to-weight ratio ``||dw||/||w||`` is far outside the healthy range, by kind.

    ``"too_large"``: at or above :data:`UPDATE_TOO_LARGE` on at least :data:`UPDATE_LARGE_REPEATS`
    measurements (a learning rate far too high often blows the weights up within a few steps, after which the
    ratio falls again, so a majority rule would miss it); each entry is ``(layer, largest ratio)``.
    ``"too_small"``: at or below :data:`UPDATE_TOO_SMALL` on at least :data:`SUSTAINED_FRACTION` of at least
    ``min_measurements`` measurements; each entry is ``(layer, median ratio)``.

    Args:
        update_sq, weight_sq: ``[measurements, layers]`` sums of squares of the update and of the weights
            before it.
        valid: bool ``[measurements, layers]``: the layer is judged in that measurement (it had non-zero
            gradients, a non-zero learning rate and is a weight-matrix layer).
        zero_start: bool ``[layers]``: the layer's weights were exactly zero before the first update (default: its
            norm in the first measurement is 0); such a layer is never "too large".

    >>> u = torch.tensor([[4.0, 1e-16], [9.0, 1e-16], [4.0, 1e-16]])
    >>> w = torch.ones(3, 2)
    >>> update_ratio_verdicts(u, w, torch.ones(3, 2, dtype=torch.bool))
    {'too_large': [(0, 3.0)], 'too_small': [(1, 1e-08)]}
    """
    ratio = update_sq.sqrt() / weight_sq.sqrt()
    ok = valid & torch.isfinite(ratio) & (weight_sq > 0)
    counts = ok.sum(0)
    # A layer that starts at exactly zero (a relative-position bias table, a LoRA B matrix) has no scale of its own:
    # its norm is how far the updates carried it, so under Adam ||dw||/||w|| is the same at any learning rate, and
    # near 1 while a warm-up's growing steps outpace what they accumulated. It cannot be "too large".
    zero_start = weight_sq[0] == 0 if zero_start is None else zero_start.reshape(-1)
    large = ((ok & (ratio >= too_large)).sum(0) >= UPDATE_LARGE_REPEATS) & ~zero_start
    large = large.nonzero().flatten().tolist()
    small = (counts >= min_measurements) & ((ok & (ratio <= too_small)).sum(0) >= SUSTAINED_FRACTION * counts)
    return {
        "too_large": [(layer, _round(ratio[ok[:, layer], layer].max().item())) for layer in large],
        "too_small": [(layer, _round(ratio[ok[:, layer], layer].median().item())) for layer in small.nonzero().flatten().tolist()],
    }


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def median_finite(values: torch.Tensor) -> float:
    """Median of the finite entries, or NaN when there are none."""
    finite = values[torch.isfinite(values)]
    return finite.median().item() if finite.numel() else math.nan

"""What :class:`~lightning_sanity.callbacks.batchnorm.BatchNormMonitor` keeps between steps (:class:`LayerState`:
per-layer constants and the judging state) and reads at each step (:class:`StepFigures`), on the host. The step's
figures reach the host in its one sync; the judgement itself is :mod:`lightning_sanity.checks.batchnorm`.
"""

from __future__ import annotations

import dataclasses
import math
from operator import sub, truediv

import torch
from torch import Tensor, nn

from lightning_sanity.checks import batchnorm as bn


class LayerState:
    """Per-layer constants and the judging state, on the host: the figures arrive there with the step's one sync.

    Plain lists of floats, one value per layer: on vectors this short Python arithmetic is cheaper than any tensor
    library; the full verdict, on the rare steps that need it, turns them into tensors.
    """

    def __init__(self, layers: list[tuple[str, nn.Module]]) -> None:
        self.names = [n for n, _ in layers]
        self.modules = [m for _, m in layers]
        #: the StepCapture names of the layers' buffers, in capture order
        self.buffer_names = bn.stat_buffer_keys(layers)
        momenta = [m.momentum for m in self.modules]
        self.numels = [float(m.running_var.numel()) for m in self.modules]
        self.momentum = [math.nan if m is None else float(m) for m in momenta]
        self.cumulative = any(m is None for m in momenta)
        self.warmup = [float(bn.warmup_steps(m)) for m in momenta]
        self.eps = [float(m.eps) for m in self.modules]
        self.floor = [e * bn.FLOOR_EPS_FACTOR for e in self.eps]
        self.collapse_level = [e * bn.COLLAPSE_EPS_FACTOR for e in self.eps]
        # The cheap screen takes over once every layer is past its warm-up and a first window: from then on the
        # warm-up form of the bad-batch test (against earlier batches) no longer applies.
        self.screened_from = int(max(self.warmup)) + bn.WINDOW
        size = len(self.modules)
        self.ring = [[math.nan] * size for _ in range(bn.WINDOW)]
        # Recovered batch variances of the last steps (NaN: no exact value), for the warm-up reference quantile.
        self.batches = [[math.nan] * size for _ in range(bn.REFERENCE_BATCHES)]
        self.peak = [0.0] * size
        self.armed = [True] * size
        self.calls = 0

    def quiet_warmup_step(self, step: "StepFigures", slot: int) -> None:
        """What the full verdict (``BatchNormMonitor._verdict_of``) keeps of a quiet step, in floats: the
        window's entry and the peak of every updated layer (the peak after its warm-up only), and each exact
        batch variance for the warm-up reference. The same float64 arithmetic as the tensors, so the state is the
        same to the bit whichever path judged the step."""
        row = self.batches[self.calls % bn.REFERENCE_BATCHES]
        ring = self.ring[slot]
        for i, (before, after, delta, tracked, m) in enumerate(zip(step.mean_before, step.mean_after, step.delta,
                                                                   step.tracked_after, step.momentum)):
            if delta < 1:
                continue
            ring[i] = after
            if tracked >= self.warmup[i] and math.isfinite(after) and after > self.peak[i]:
                self.peak[i] = after
            if delta == 1:
                m = m if m > 1e-12 else 1e-12  # bn.batch_variance_mean's clamp
                variance = (after - (1.0 - m) * before) / m
                if math.isfinite(variance):
                    row[i] = variance


class StepFigures:
    """One step's figures, read on the host: channel means of the running variance and the update counts."""

    def __init__(self, state: LayerState, values: list[float], before: list[Tensor], live: list[Tensor]) -> None:
        L = len(state.numels)
        numels = state.numels
        # map() with operators: no Python frame per layer, on every step of a model with many BatchNorm layers
        self.mean_before = list(map(truediv, values[:L], numels))
        self.mean_after = list(map(truediv, values[L:2 * L], numels))
        self.tracked_after = values[3 * L:4 * L]
        self.delta = list(map(sub, self.tracked_after, values[2 * L:3 * L]))
        self.momentum = state.momentum
        if state.cumulative:
            # bn.effective_momentum in floats: None (cumulative average) weighs the last batch 1 / num_batches_tracked
            self.momentum = [1.0 / max(t, 1.0) if m != m else m for m, t in zip(state.momentum, self.tracked_after)]
        self.before, self.live = before, live  # the device tensors, for the maxima of a finding or a chart

    def batch_ratio(self, state: LayerState) -> list[float]:
        out = []
        for b, a, m, f in zip(self.mean_before, self.mean_after, self.momentum, state.floor):
            try:
                out.append(bn.batch_ratio(b, a, m, f))
            except ZeroDivisionError:
                out.append(math.nan)
        return out

    def max_after(self) -> list[float]:
        """Channel max of every layer's running variance (a device read: findings and charts only)."""
        return torch.stack(maxima(self.live[1::3])).float().tolist()


@dataclasses.dataclass
class Tally:
    """Counters of a fit: steps judged, replay bundles saved, and the last step whose scalars were logged."""

    steps_judged: int = 0
    bundles: int = 0
    last_logged_step: int = -1


def maxima(tensors: list[Tensor]) -> list[Tensor]:
    """Each tensor's max, fused where torch has ``_foreach_max``."""
    try:
        return list(torch._foreach_max(tensors))
    except (AttributeError, RuntimeError, NotImplementedError):  # torch without _foreach_max
        return [t.max() for t in tensors]

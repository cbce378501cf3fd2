"""What the norm monitor keeps on the host between reads: the per-step history its end-of-run judgements need,
and the running figures of the exploding-gradient spike test. Host tensors and floats only: no device reads."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch

from lightning_sanity.checks import norms as N

#: Steps of history kept on the host for the end-of-run judgements; older steps are thinned out beyond this.
HISTORY_STEPS = 2048

_Where = tuple[int, int, int]  # (global step, epoch, batch index)
#: A layer's weight sum of squares before its first reading (a real one is never negative).
UNREAD = -1.0


@dataclasses.dataclass
class NormHistory:
    """Per-step sums of squares (rows = optimizer steps, columns = layers), thinned beyond ``HISTORY_STEPS``."""

    grad: list[torch.Tensor] = dataclasses.field(default_factory=list)
    weight: list[torch.Tensor] = dataclasses.field(default_factory=list)
    trainable: list[torch.Tensor] = dataclasses.field(default_factory=list)
    present: list[torch.Tensor] = dataclasses.field(default_factory=list)
    meta: list[_Where] = dataclasses.field(default_factory=list)
    #: the steps whose update was measured: update and weight sums of squares, which layers count, where
    upd_sq: list[torch.Tensor] = dataclasses.field(default_factory=list)
    upd_weight: list[torch.Tensor] = dataclasses.field(default_factory=list)
    upd_valid: list[torch.Tensor] = dataclasses.field(default_factory=list)
    upd_meta: list[_Where] = dataclasses.field(default_factory=list)
    #: the latest weight reading per layer, carried over the steps that did not read the weights (``UNREAD`` before
    #: the layer's first reading), and the first reading per layer
    last_weight_sq: Optional[torch.Tensor] = None
    first_weight_sq: Optional[torch.Tensor] = None
    counts: Optional[N.GradientCounts] = None
    first_meta: Optional[_Where] = None

    def carry_weights(self, weight_sq: torch.Tensor, meta: list) -> None:
        """Fill the rows (and layers) whose weights were not read with the latest reading, in place; rows before a
        layer's first reading hold ``UNREAD`` until :meth:`filled` replaces it."""
        if self.last_weight_sq is None:
            self.last_weight_sq = torch.full((weight_sq.shape[1],), UNREAD, dtype=weight_sq.dtype)
            self.first_weight_sq = self.last_weight_sq.clone()
        last, first = self.last_weight_sq, self.first_weight_sq
        for i, r in enumerate(meta):
            if r.weighed is not None:
                last = torch.where(r.weighed, weight_sq[i], last)
                first = torch.where(r.weighed & (first == UNREAD), weight_sq[i], first)
            weight_sq[i] = last
        self.last_weight_sq, self.first_weight_sq = last, first

    def filled(self, rows: torch.Tensor) -> torch.Tensor:
        """``rows`` of weight sums of squares with each layer's rows before its first reading set to that reading.

        The weights are read before an optimizer's step: a layer's first reading is its weights as they were before
        any optimizer stepped them, that is since the fit started (a generator stepped once every few batches, a
        backbone unfrozen late, a head whose optimizer starts after a warm-up). A layer never read is NaN (unknown),
        never zero: zero would read as a zero-initialised layer, which the growth and update judgements set apart.
        """
        if self.first_weight_sq is None:
            return rows
        first = torch.where(self.first_weight_sq == UNREAD, math.nan, self.first_weight_sq)
        return torch.where(rows == UNREAD, first, rows)

    def chart_row(self, weight_sq: torch.Tensor, weighed: Optional[torch.Tensor] = None) -> torch.Tensor:
        """A chart point's weight sums of squares: with ``weighed``, the layers it did not read carried from the
        latest reading; NaN (not charted) before a layer's first reading."""
        if weighed is not None:
            carried = self.last_weight_sq if self.last_weight_sq is not None else torch.full_like(weight_sq, UNREAD)
            weight_sq = torch.where(weighed, weight_sq, carried)
        return torch.where(weight_sq == UNREAD, math.nan, weight_sq)

    def thin(self) -> None:
        if sum(t.shape[0] for t in self.grad) <= HISTORY_STEPS:
            return
        for name in ("grad", "weight", "trainable", "present"):
            setattr(self, name, [torch.cat(getattr(self, name))[::2]])
        self.meta = self.meta[::2]
        if len(self.upd_meta) > HISTORY_STEPS:
            for name in ("upd_sq", "upd_weight", "upd_valid", "upd_meta"):
                setattr(self, name, getattr(self, name)[::2])


@dataclasses.dataclass
class SpikeWatch:
    """The global gradient norms seen so far, as the running spike test needs them."""

    recent: list[float] = dataclasses.field(default_factory=list)  # the last 200 finite global gradient norms
    max: float = -math.inf
    seen: int = 0
    early_max: float = -math.inf  # the largest of the first ``N.SPIKE_EARLY`` steps
    #: a spike within the first ``N.SPIKE_WARMUP`` steps, judged at the end: (norm, per-layer sums, its row)
    early_spike: Optional[tuple] = None


def finite_max(values: torch.Tensor) -> float:
    """The largest finite value of ``values`` (NaN when none is finite)."""
    finite = values[torch.isfinite(values)]
    return finite.max().item() if finite.numel() else math.nan

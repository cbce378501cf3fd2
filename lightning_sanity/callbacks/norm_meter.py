"""The norm monitor's measuring side (device-side buffers and hooks, no judgement), written for the hot path.

Per-parameter reads go through C-level iteration (``map`` over :func:`operator.attrgetter`), never a Python
frame per parameter; an optimizer's parameters, layers and index tensors are built once (:class:`OptimizerView`,
one :class:`GradPattern` per set of parameters with a gradient) and cached, buffer rows are views made once;
index tensors reach the device without a sync; a step only writes its row of a device buffer, read (one
host-device transfer) on logging steps only (:meth:`NormMeter.read`). Judgements: ``norm_verdicts``."""

from __future__ import annotations

import time
from itertools import repeat
from operator import attrgetter, is_not
from typing import Any, Optional

import torch
from torch.optim import Optimizer

from lightning_sanity.callbacks import norm_charts
from lightning_sanity.callbacks._norm_rows import BatchState, GradPattern, StepRow, any_layers
from lightning_sanity.callbacks._param_zero import ParamZeroWatch
from lightning_sanity.callbacks._update_bins import UpdateBins
from lightning_sanity.callbacks.step import share_grad_norms
from lightning_sanity.checks import layers as LM
from lightning_sanity.stride import StepStride

# Per-parameter reads through C-level iteration: no Python frame per parameter on the hot path.
_grad_of = attrgetter("grad")
_requires_grad = attrgetter("requires_grad")

#: At most this many optimizer steps are buffered on the device; a longer logging interval flushes early.
_BUFFER_STEPS = 1024
#: ... and at least this many: a chart point in between reads its own row only (:meth:`NormMeter.read_last`), so
#: a short run charted every few steps does not pay the history's bookkeeping at every point.
_MIN_BUFFER_STEPS = 64


class OptimizerView:
    """The parameters of one optimizer that belong to the model, with their layers, built once and cached.

    ``grad_norms`` holds the gradient norm of each parameter, one row per buffered step, until the monitor's
    read folds them into per-layer sums of squares: on the hot path a step only writes its row.
    """

    def __init__(self, optimizer: Optimizer, layers: LM.LayerMap, device: torch.device) -> None:
        self.signature = _signature(optimizer)
        self.optimizer_params = sum(self.signature)
        self.params: list[torch.Tensor] = []
        self.layer: list[int] = []
        self.group: list[int] = []
        for g, group in enumerate(optimizer.param_groups):
            for p in group["params"]:
                layer = layers.param_layer.get(id(p))
                if layer is not None:  # parameters outside the model are optimizer-coverage's business
                    self.params.append(p)
                    self.layer.append(layer)
                    self.group.append(g)
        self.num_layers = len(layers)
        self.device = device
        # Gradients share their parameter's dtype: all float32 means no conversion in the fused norm.
        self.widen = any(p.dtype != torch.float32 for p in self.params)
        self.patterns: dict[tuple[int, ...], GradPattern] = {}
        L = self.num_layers
        self.layer_index = _to_device(self.layer, device)
        self.weight_index = _to_device([L + layer for layer in self.layer], device)
        self.owned = torch.zeros(L, dtype=torch.bool)
        self.owned[self.layer] = True
        self.grad_norms: Optional[torch.Tensor] = None
        self._rows: tuple[torch.Tensor, ...] = ()
        self._bins: dict[tuple[int, int], tuple[list[int], torch.Tensor]] = {}
        self.zero_watch = ParamZeroWatch(len(self.params), device)

    def grad_norm_row(self, row: int, rows: int) -> torch.Tensor:
        if self.grad_norms is None or self.grad_norms.shape[0] != rows:
            self.grad_norms = torch.zeros(rows, len(self.params), dtype=torch.float32, device=self.device)
            self._rows = self.grad_norms.unbind(0)  # views made once: indexing is a tensor op of its own
        return self._rows[row]

    def add_weight_norms(self, row: torch.Tensor) -> None:
        """Add the squared weight norms of this optimizer's parameters into ``row``'s per-layer weight block."""
        row.index_add_(0, self.weight_index, LM.tensor_norms(self.params, widen=self.widen).square())

    def fold(self, buf: torch.Tensor) -> None:
        """Add the buffered gradient norms, squared, into ``buf``'s per-layer block, and clear them."""
        if self.grad_norms is not None and self.params:
            self.zero_watch.fold(self.grad_norms)
            buf[: self.grad_norms.shape[0], : self.num_layers].index_add_(1, self.layer_index, self.grad_norms.square())
            self.grad_norms.zero_()

    def bin_subset(self, pattern: GradPattern, b: int, bin_of: list[int]) -> tuple[list[int], torch.Tensor]:
        """Positions of the stepped parameters of ``pattern`` whose layer is in bin ``b``, and their update index."""
        key = (id(pattern), b)
        found = self._bins.get(key)
        if found is None:
            if len(self._bins) > 256:
                self._bins.clear()
            present = range(len(self.params)) if pattern.present is None else pattern.present
            chosen = [i for i in present if bin_of[self.layer[i]] == b]
            L = self.num_layers
            found = self._bins[key] = (chosen, _to_device([2 * L + self.layer[i] for i in chosen], self.device))
        return found

    def pattern(self, missing: tuple[int, ...]) -> GradPattern:
        found = self.patterns.get(missing)
        if found is None:
            if len(self.patterns) > 64:  # a pattern that changes every step: keep the cache bounded
                self.zero_watch.bank(self.patterns.values())
                self.patterns.clear()
            found = self.patterns[missing] = self._build(missing)
        found.uses += 1
        return found

    def _build(self, missing: tuple[int, ...]) -> GradPattern:
        L = self.num_layers
        skip = set(missing)
        present = [i for i in range(len(self.params)) if i not in skip]
        grad_layers = [self.layer[i] for i in present]
        trainable = torch.zeros(L, dtype=torch.bool)
        has_grad = torch.zeros(L, dtype=torch.bool)
        for i, p in enumerate(self.params):
            if p.requires_grad:
                trainable[self.layer[i]] = True
        for layer in grad_layers:
            has_grad[layer] = True
        return GradPattern(
            present=None if not missing else present,
            present_index=None if not missing else _to_device(present, self.device),
            update_index=_to_device([2 * L + layer for layer in grad_layers], self.device),
            trainable=trainable,
            has_grad=has_grad,
            owned=self.owned,
        )


def _to_device(values: list[int], device: torch.device) -> torch.Tensor:
    """An index tensor on ``device`` without a host-device synchronisation (pinned memory, non-blocking copy)."""
    tensor = torch.tensor(values, dtype=torch.long)
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def _signature(optimizer: Optimizer) -> tuple[int, ...]:
    return tuple(len(g["params"]) for g in optimizer.param_groups)


class NormMeter:
    """A device buffer with one row per optimizer step and ``3 * L`` columns: per-layer sums of squares of the
    gradients, the weights and the updates; :meth:`read` brings the buffered rows to the host in one transfer."""

    def __init__(self, update_ratio: bool, histogram_every: int) -> None:
        self.update_ratio = update_ratio
        self.histogram_every = histogram_every
        self.layers: Optional[LM.LayerMap] = None
        self.every = 1  # set by start()
        self.bins = UpdateBins()
        self.views: dict[int, OptimizerView] = {}
        self.buf: Optional[torch.Tensor] = None
        self.row = 0  # the buffer row of the current step
        self.rows: list[StepRow] = []  # host-side facts of the buffered rows
        self.stepped = 0  # batches in which an optimizer stepped
        self.batch: Optional[BatchState] = None  # made at the batch's first optimizer step, None between batches
        self.stride: Optional[StepStride] = None  # rows on a measured stride after a dense window (None: every step)
        # the pre-step copies of the stepped parameters, freed (or kept as ``spare`` for reuse) after the step
        # (optimizer id, stepped tensors, pattern, their copies, update index, slice scales or None)
        self.copies: list[tuple[int, list[torch.Tensor], GradPattern, list[torch.Tensor], torch.Tensor, Any]] = []
        self.spare: dict[int, tuple[GradPattern, list[torch.Tensor]]] = {}
        self.zero_lr_groups: dict[tuple[int, int], tuple[str, list[int], dict]] = {}

    def start(self, layers: LM.LayerMap, every: int) -> None:
        self.layers = layers
        self.every = every
        self.bins = UpdateBins.plan(layers.numels)

    def wanted(self) -> bool:
        """Must the next batch be measured whatever the stride: weights and updates (the first steps, logging
        steps), or histograms."""
        return (self.stepped < self.bins.early or (self.stepped + 1) % self.every == 0
                or bool(self.histogram_every and self.stepped % self.histogram_every == 0))

    def off_stride(self, step: int) -> bool:
        """No row for the batch at global ``step``: off the stride and not a step that must be measured."""
        return self.stride is not None and self.batch is None and not self.stride.measure(step) and not self.wanted()

    def start_batch(self) -> BatchState:
        measure = self.stepped < self.bins.early or (self.stepped + 1) % self.every == 0
        self.batch = BatchState(measure, self.update_ratio and measure)
        return self.batch

    def release(self) -> None:
        """Free the copies of the parameters (end of fit, a crash, an internal error)."""
        self.copies.clear(), self.spare.clear()

    def _view(self, optimizer: Optimizer, device: torch.device) -> OptimizerView:
        view = self.views.get(id(optimizer))
        if view is None or view.signature != _signature(optimizer):
            old, view = view, OptimizerView(optimizer, self.layers, device)
            if old is not None:
                old.fold(self.buf)  # its buffered steps, before its layout changes
                view.zero_watch.carry(old.zero_watch, old.params, view.params, old.patterns.values())
            self.views[id(optimizer)] = view
        return view

    def record(self, trainer: Any, optimizer: Optimizer, step: int) -> None:
        """``on_before_optimizer_step`` at global ``step``: gradient norms (and weights, a pre-step copy) into the row."""
        stride = self.stride
        timing = stride is not None and stride.timing  # the clock is read only while the stride is being decided
        start = time.thread_time() if timing else 0.0
        grad_mode = torch.is_grad_enabled()  # on: Lightning calls the hook from the optimizer's closure
        torch.set_grad_enabled(False)  # no graph through the weight reads: a call costs a third of a no_grad block
        try:
            self._record(trainer, optimizer, step)
        finally:  # the stride follows what the rows cost
            torch.set_grad_enabled(grad_mode)
            if timing:
                stride.charge(time.thread_time() - start)

    def _record(self, trainer: Any, optimizer: Optimizer, step: int) -> None:
        batch = self.batch or self.start_batch()
        if id(optimizer) in batch.seen:
            return  # manual optimization stepping the same optimizer twice in a batch: the first step counts
        batch.seen.add(id(optimizer))
        if self.buf is None:
            first = next((p for g in optimizer.param_groups for p in g["params"]), None)
            if first is None:
                return
            L = len(self.layers)
            rows = min(max(self.every, _MIN_BUFFER_STEPS), _BUFFER_STEPS)
            self.buf = torch.zeros(rows, 3 * L, dtype=torch.float32, device=first.device)
        view = self._view(optimizer, self.buf.device)
        params = view.params
        if not params:
            return
        grads = list(map(_grad_of, params))
        if all(map(is_not, grads, repeat(None))) and all(map(_requires_grad, params)):
            pattern = view.pattern(())
            present_grads = grads
        else:
            missing = tuple(i for i, (p, g) in enumerate(zip(params, grads)) if g is None or not p.requires_grad)
            pattern = view.pattern(missing)
            present_grads = [grads[i] for i in pattern.present]
        if batch.step is None:
            batch.step = step
        batch.patterns.append(pattern)
        row = view.grad_norm_row(self.row, self.buf.shape[0])
        if pattern.present is None:
            norms = LM.tensor_norms(grads, widen=view.widen, out=row)
            if len(params) == view.optimizer_params:
                share_grad_norms(trainer, optimizer, params, norms)  # the non-finite sentinel's flag reads them
        elif present_grads:
            row.index_copy_(0, pattern.present_index, LM.tensor_norms(present_grads, widen=view.widen))
        if batch.measure_weights:
            # Weights move slowly: read on logging steps (and the first steps), carried forward in between.
            view.add_weight_norms(self.buf[self.row])
        if self.histogram_every and self.stepped % self.histogram_every == 0:
            norm_charts.write_histograms(trainer, self.layers, view.params, view.layer, grads)
        if batch.measure_update and present_grads:
            bins = self.bins
            whole = bins.whole
            if whole:
                stepped = params if pattern.present is None else [params[i] for i in pattern.present]
                index, scale = pattern.update_index, None
            else:  # this step's bin of layers only: the copy stays within a quarter of the largest layer
                chosen, index = view.bin_subset(pattern, bins.current, bins.bin_of)
                stepped, scale = bins.slices([params[i] for i in chosen])
            spare = self.spare.pop(id(optimizer), None)
            if spare is not None and spare[0] is pattern and whole:
                torch._foreach_copy_(spare[1], stepped)
                before = spare[1]
            else:
                spare = None  # freed before the new copy is made
                before = torch._foreach_mul(stepped, 1.0) if stepped else []
            if stepped:
                self.copies.append((id(optimizer), stepped, pattern, before, index, scale))
            valid = batch.update_valid if batch.update_valid is not None else torch.zeros(len(self.layers), dtype=torch.bool)
            measured = self._lr_positive_layers(optimizer, view, pattern)
            batch.update_valid = valid | (measured if whole else measured & bins.masks[bins.current])

    def _lr_positive_layers(self, optimizer: Optimizer, view: OptimizerView, pattern: GradPattern) -> torch.Tensor:
        """Layers with a gradient in this step; those in a parameter group with lr 0 are noted for naming.

        A trainable layer with gradients whose group has lr 0 does not move: it is judged like any other (a
        frozen group is frozen by requires_grad=False, which leaves it without a gradient).
        """
        for g, group in enumerate(optimizer.param_groups):
            # a tensor learning rate (capturable optimizers) would need a device read: assume it is non-zero
            if not isinstance(group.get("lr"), torch.Tensor) and group.get("lr") == 0:
                key = (id(optimizer), g)
                if key not in self.zero_lr_groups:
                    layers = sorted({view.layer[i] for i, gi in enumerate(view.group) if gi == g})
                    self.zero_lr_groups[key] = (f"param group {g} of {type(optimizer).__name__}", layers, group)
        return pattern.has_grad

    def finish_updates(self) -> None:
        """``||w_after - w_before||^2`` per layer into the buffer's third block, then free the copies.

        On CPU, when the next step measures again (every step at ``norms_log_every_n_steps=1``, and the first
        steps), the copy's memory is reused by it instead of allocated afresh: fresh CPU allocations of this
        size cost page faults. It is freed as soon as a step does not measure; on accelerators (caching
        allocators) it is always freed at once.
        """
        reuse = self.buf.device.type == "cpu" and self.update_ratio and self.bins.whole and (
            self.stepped + 1 < self.bins.early or (self.stepped + 2) % self.every == 0
        )
        for key, params, pattern, before, index, scale in self.copies:
            torch._foreach_sub_(before, params)
            if scale is not None:
                torch._foreach_mul_(before, scale)
            LM.layer_sum_of_squares(before, index, 3 * len(self.layers), out=self.buf[self.row])
            if reuse:
                self.spare[key] = (pattern, before)
        self.copies.clear()
        if not reuse:
            self.spare.clear()

    def end_batch(self, epoch: int, batch_idx: int) -> StepRow:
        """``on_train_batch_end`` of a batch in which an optimizer stepped: close its row, move to the next."""
        batch, stride = self.batch, self.stride
        timing = stride is not None and stride.timing
        start = time.thread_time() if timing else 0.0
        if self.copies or self.spare:
            with torch.no_grad():
                self.finish_updates()
        if batch.measure_update and not self.bins.whole:
            bins = self.bins
            bins.current = (bins.current + 1) % len(bins.masks)  # the next measuring step: next bin
            bins.visits += bins.current == 0  # a whole rotation: large parameters move on to their next slice
        weighed = self._weigh_idle(batch) if batch.measure_weights else None
        row = StepRow(batch.step, epoch, batch_idx, batch.patterns, batch.update_valid, weighed)
        self.batch = None
        self.rows.append(row)
        self.row += 1
        self.stepped += 1
        if timing:
            stride.charge(time.thread_time() - start)
        return row

    def _weigh_idle(self, batch: BatchState) -> torch.Tensor:
        """Layers weighed in the row: the stepped optimizers', and (read here) those of optimizers that stepped before."""
        weighed = any_layers(batch.patterns, "owned", len(self.layers))
        with torch.no_grad():  # a generator stepped every few batches is read at each logging step, not only on its own
            for view in [v for key, v in self.views.items() if key not in batch.seen and v.params]:
                view.add_weight_norms(self.buf[self.row])
                weighed = weighed | view.owned
        return weighed

    def zero_layers(self) -> Optional[torch.Tensor]:
        """Layers whose gradient in the last closed row was present and exactly zero: bool per layer, on the host
        (one read, made once after the first step to plan the gradient probe)."""
        if self.buf is None or self.row == 0 or not self.rows:
            return None
        sums = torch.zeros(len(self.layers), dtype=torch.float32, device=self.buf.device)
        for view in self.views.values():
            if view.grad_norms is not None and view.params:
                sums.index_add_(0, view.layer_index, view.grad_norms[self.row - 1])
        return (sums == 0).cpu() & any_layers(self.rows[-1].patterns, "has_grad", len(self.layers))

    def read(self, sharded: bool) -> Optional[tuple[torch.Tensor, list[StepRow]]]:
        """The buffered rows on the host (float64) with their facts, and an empty buffer; None when empty."""
        rows = self.row
        if rows == 0 or self.buf is None:
            return None
        for view in self.views.values():
            view.fold(self.buf)
        device_rows = self.buf[:rows]
        if sharded:
            torch.distributed.all_reduce(device_rows)  # sums of squares of the shards add up to the whole
        data = device_rows.to("cpu", torch.float64)  # the one host-device transfer of this logging step
        device_rows.zero_()
        self.row = 0
        meta, self.rows = self.rows, []
        return data, meta

    def read_last(self) -> Optional[tuple[torch.Tensor, StepRow]]:
        """The last buffered row on the host (float64) with its facts, the buffer left as it is; None when empty.

        Not for sharded strategies (their rows are all-reduced by :meth:`read`, on every rank)."""
        if self.row == 0 or self.buf is None:
            return None
        for view in self.views.values():
            view.fold(self.buf)  # the buffered gradient norms into their layers (later folds add nothing twice)
        return self.buf[self.row - 1].to("cpu", torch.float64), self.rows[-1]

    def weigh_last_row(self) -> None:
        """End of fit: read the weights once more for the last buffered step, so the judgements see them as they
        ended instead of carried from the last logging step (they include the last update: close enough)."""
        if not self.rows or self.rows[-1].weighed is not None or self.buf is None:
            return
        L = len(self.layers)
        weighed = torch.zeros(L, dtype=torch.bool)
        with torch.no_grad():
            row = self.buf[self.row - 1]
            row[L:2 * L] = 0
            for view in self.views.values():
                if view.params:
                    view.add_weight_norms(row)
                    weighed |= view.owned
        self.rows[-1].weighed = weighed

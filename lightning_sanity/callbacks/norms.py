r"""
Norm monitor
^^^^^^^^^^^^

Per-layer gradient norms, weight norms and update-to-weight ratios, logged to TensorBoard and judged for
dead, vanishing and exploding gradients, unbounded weight growth and learning rates far off the mark.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from itertools import repeat
from operator import attrgetter, is_not
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from torch.optim import Optimizer
from typing_extensions import override

from lightning_sanity import tensorboard
from lightning_sanity.callbacks._replay_capture import share_grad_norms
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.cost import timed
from lightning_sanity.checks import norms as N
from lightning_sanity.checks.accumulation import ResetWatch, accumulating_message, find_accumulating
from lightning_sanity.checks.first_step import first_step_spike
from lightning_sanity.checks.weight_drift import steady_growth
from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)

# Per-parameter reads through C-level iteration: no Python frame per parameter on the hot path.
_grad_of = attrgetter("grad")
_requires_grad = attrgetter("requires_grad")

#: The update ratio is also measured on each of the first steps: a learning rate that is far too high shows
#: (and may diverge) long before the first logging step.
_EARLY_UPDATE_STEPS = 10
#: The update ratio copies at most this many parameter elements per measuring step, or the largest layer when
#: that is larger: layers are measured in bins of that size, one bin per measuring step in rotation, so the
#: suite's extra memory stays within the largest layer (not a second copy of the whole model).
_UPDATE_BIN_MIN = 1 << 20
#: At most this many optimizer steps are buffered on the device; a longer logging interval flushes early.
_BUFFER_STEPS = 1024
#: Steps of history kept on the host for the end-of-run judgements; older steps are thinned out beyond this.
_HISTORY_STEPS = 2048
#: Cadence used for judging when the Trainer logs nothing (``log_every_n_steps=0``).
_FALLBACK_EVERY = 50
#: Strategies whose parameters are shards: per-layer sums of squares must be added across ranks.
_SHARDED_STRATEGIES = ("FSDPStrategy", "DeepSpeedStrategy", "ModelParallelStrategy")


@dataclasses.dataclass
class _Pattern:
    """Which parameters of an optimizer had a gradient in a step, and the index tensors that go with it."""

    present: Optional[list[int]]  # positions in the optimizer's parameter list; None: all of them
    present_index: Optional[torch.Tensor]  # the same positions on the device (None: all of them)
    update_index: torch.Tensor  # 2L + layer of each parameter with a gradient
    trainable: torch.Tensor  # bool [L], host
    has_grad: torch.Tensor  # bool [L], host
    owned: torch.Tensor  # bool [L], host: layers with a parameter in this optimizer (whose weights it reads)


class _OptimizerView:
    """The parameters of one optimizer that belong to the model, with their layers, built once and cached.

    ``grad_norms`` holds the gradient norm of each parameter, one row per buffered step, until the monitor's
    read folds them into per-layer sums of squares: on the hot path a step only writes its row.
    """

    def __init__(self, optimizer: Optimizer, layers: N.LayerMap, device: torch.device) -> None:
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
        self.patterns: dict[tuple[int, ...], _Pattern] = {}
        L = self.num_layers
        self.layer_index = _to_device(self.layer, device)
        self.weight_index = _to_device([L + layer for layer in self.layer], device)
        self.owned = torch.zeros(L, dtype=torch.bool)
        self.owned[self.layer] = True
        self.grad_norms: Optional[torch.Tensor] = None
        self._rows: tuple[torch.Tensor, ...] = ()
        self._bins: dict[tuple[int, int], tuple[list[int], torch.Tensor]] = {}

    def grad_norm_row(self, row: int, rows: int) -> torch.Tensor:
        if self.grad_norms is None or self.grad_norms.shape[0] != rows:
            self.grad_norms = torch.zeros(rows, len(self.params), dtype=torch.float32, device=self.device)
            self._rows = self.grad_norms.unbind(0)  # views made once: indexing is a tensor op of its own
        return self._rows[row]

    def add_weight_norms(self, row: torch.Tensor) -> None:
        """Add the squared weight norms of this optimizer's parameters into ``row``'s per-layer weight block."""
        row.index_add_(0, self.weight_index, N.tensor_norms(self.params, widen=self.widen).square())

    def fold(self, buf: torch.Tensor) -> None:
        """Add the buffered gradient norms, squared, into ``buf``'s per-layer block, and clear them."""
        if self.grad_norms is not None and self.params:
            buf[: self.grad_norms.shape[0], : self.num_layers].index_add_(1, self.layer_index, self.grad_norms.square())
            self.grad_norms.zero_()

    def bin_subset(self, pattern: _Pattern, b: int, bin_of: list[int]) -> tuple[list[int], torch.Tensor]:
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

    def pattern(self, missing: tuple[int, ...]) -> _Pattern:
        found = self.patterns.get(missing)
        if found is None:
            if len(self.patterns) > 64:  # a pattern that changes every step: keep the cache bounded
                self.patterns.clear()
            found = self.patterns[missing] = self._build(missing)
        return found

    def _build(self, missing: tuple[int, ...]) -> _Pattern:
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
        return _Pattern(
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


@dataclasses.dataclass
class _Row:
    """Host-side facts about one buffered optimizer step (known without reading the device)."""

    step: int
    epoch: int
    batch_idx: int
    patterns: list[_Pattern]
    update_valid: Optional[torch.Tensor] = None  # bool [L] when the update was measured in this step
    weighed: Optional[torch.Tensor] = None  # bool [L]: layers whose weight norms were read in this step


class NormMonitor(SanityCallback):
    r"""Track per-layer gradient norms, weight norms and update ratios; judge them at the end of fit.

    A *layer* is a module that owns parameters directly (``nn.Linear``, ``nn.Conv2d``, ``nn.LayerNorm``, ...);
    its norm is the L2 norm over all its parameters together. Gradients are read in
    ``on_before_optimizer_step``, where Lightning guarantees finished gradients: accumulated over
    ``accumulate_grad_batches``, unscaled by AMP, and **before gradient clipping**. Weight norms are read at the
    same point (the weights before the step) on logging steps and on the first 10 steps; weights move slowly,
    so the judgements carry the latest reading over the steps in between, and the weights are read once more at
    the end of fit. The update ratio ``||w_after - w_before|| / ||w_before||`` is measured on the same steps, from
    a copy of the stepped parameters taken just before the step and freed right after it (no permanent copy of
    the model); a model larger than 2^20 elements is measured in bins of layers of at most its largest layer, one
    bin per measuring step in rotation, so the copy stays within the largest layer. Several optimizers and
    manual optimization work alike.

    Cost: per optimizer step, one fused ``torch._foreach_norm`` over the gradients, written into a row of a
    buffer on the device; the buffer is reduced per layer and read (one host-device transfer) every
    ``norms_log_every_n_steps`` steps only. Non-logging steps never wait for the device.

    Checks (judged at the end of fit, spikes as they are read):

    - ``dead-gradient``: a trainable layer whose gradient is None, or exactly zero, on every step.
    - ``vanishing-gradient``: a layer's gradient vanishingly small against its weights and against the
      layers with the largest gradients, sustained.
    - ``exploding-gradient``: the global gradient norm jumps by 3 orders of magnitude against its running
      median (and 10x above the first steps' level), or grows by 2 orders of magnitude and keeps rising; a spike
      under ``gradient_clip_val`` is info (clipping bounded the step).
    - ``weight-growth``: a layer's weight norm multiplied by more than 10 and still rising.
    - ``update-ratio``: ``||dw||/||w||`` of a weight layer at or above 1 (learning rate far too high) or at or
      below 1e-7 with non-zero gradients (not learning), sustained.

    TensorBoard tags (scalars, on global rank 0, at every logging step; ``<layer>`` is the module name as in
    ``named_modules()``, or its group, see ``norms_max_tags``):

    - ``sanity/grad_norm/<layer>``: L2 norm of the layer's gradient (pre-clip); ``sanity/grad_norm/global``:
      over all gradients.
    - ``sanity/weight_norm/<layer>``: L2 norm of the layer's parameters; ``sanity/weight_norm/global``.
    - ``sanity/update_ratio/<layer>``: ``||dw|| / ||w||`` of the layer for the step.
    - ``sanity/grad_hist/<layer>``, ``sanity/weight_hist/<layer>``: histograms, only when
      ``norms_histogram_every_n_steps`` is set.

    A custom-scalars chart per quantity ("CUSTOM SCALARS" tab, category ``sanity: norms``) draws a line per
    layer. The scalars also go to every other logger (CSV, ...).

    Under DDP gradients are already all-reduced when they are read, so only global rank 0 measures and logs.
    Under sharded strategies (FSDP, DeepSpeed, ModelParallel) every rank measures its shards and the per-layer
    sums of squares are all-reduced at each read; "no gradient" cannot be told from "not this rank's shard"
    there, so only all-zero gradients count as dead.

    Args:
        norms_log_every_n_steps: read, log and judge every this many optimizer steps; None follows the
            Trainer's ``log_every_n_steps``. 0 logs nothing (judgements still run, reading every 50 steps).
        norms_group_depth: group layers by their first ``depth`` module-name parts for logging
            (``encoder.layers.3``); judgements stay per layer.
        norms_group_regex: group layers for logging by this regular expression (its first group, or the whole
            match, names the group; names that do not match stay their own group).
        norms_max_tags: at most this many layers per quantity are logged; a model with more is grouped
            automatically at the deepest module depth that fits (judgements stay per layer).
        norms_update_ratio: measure update ratios (needs a transient copy of one bin of stepped layers, at
            most the largest layer, on measuring steps; switch off when memory is tight).
        norms_histogram_every_n_steps: write gradient and weight histograms per layer every this many steps
            (0: never, the default; histograms cost a copy of every parameter and gradient).

    Raises:
        ValueError: an argument is out of range; the message names it, the value and what is allowed.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.norms import NormMonitor
        >>> trainer = Trainer(callbacks=[NormMonitor(norms_group_depth=2)], logger=False)
    """

    checks = ("dead-gradient", "vanishing-gradient", "exploding-gradient", "weight-growth", "update-ratio")
    threshold_specs = {
        "vanishing-gradient": {
            "rms": Threshold(N.VANISHING_RMS, "RMS gradient element of a layer below which it may be vanishing"),
            "relative": Threshold(N.VANISHING_RELATIVE, "a layer's gradient-to-weight norm ratio below this times the largest layer's",
                                  maximum=1.0),
        },
        "exploding-gradient": {
            "spike": Threshold(N.SPIKE_FACTOR, "a step's global gradient norm over its running median"),
            "growth": Threshold(N.GROWTH_FACTOR, "sustained growth of the global gradient norm over the run"),
        },
        "weight-growth": {
            "factor": Threshold(N.WEIGHT_GROWTH_FACTOR, "growth of a layer's weight norm since the first step"),
        },
        "update-ratio": {
            "too_large": Threshold(N.UPDATE_TOO_LARGE, "update-to-weight norm ratio of a step at or above which updates are too large"),
            "too_small": Threshold(N.UPDATE_TOO_SMALL, "update-to-weight norm ratio at or below which a layer is not learning"),
        },
    }

    def __init__(
        self,
        norms_log_every_n_steps: Optional[int] = None,
        norms_group_depth: Optional[int] = None,
        norms_group_regex: Optional[str] = None,
        norms_max_tags: int = 64,
        norms_update_ratio: bool = True,
        norms_histogram_every_n_steps: int = 0,
    ) -> None:
        _check_int("norms_log_every_n_steps", norms_log_every_n_steps, minimum=0, optional=True)
        _check_int("norms_group_depth", norms_group_depth, minimum=1, optional=True)
        _check_int("norms_max_tags", norms_max_tags, minimum=1)
        _check_int("norms_histogram_every_n_steps", norms_histogram_every_n_steps, minimum=0)
        if norms_group_regex is not None:
            import re

            if not isinstance(norms_group_regex, str):
                raise ValueError(f"`norms_group_regex` must be a regular expression string or None, got {norms_group_regex!r}.")
            try:
                re.compile(norms_group_regex)
            except re.error as err:
                raise ValueError(f"`norms_group_regex` got {norms_group_regex!r}, which is not a valid regular expression: {err}.") from None
        if not isinstance(norms_update_ratio, bool):
            raise ValueError(f"`norms_update_ratio` must be True or False, got {norms_update_ratio!r}.")
        self.log_every_n_steps = norms_log_every_n_steps
        self.group_depth = norms_group_depth
        self.group_regex = norms_group_regex
        self.max_tags = norms_max_tags
        self.update_ratio = norms_update_ratio
        self.histogram_every_n_steps = norms_histogram_every_n_steps
        self._reset()

    # ------------------------------------------------------------------ state

    def _reset(self) -> None:
        self.layers: Optional[N.LayerMap] = None
        self._active = False
        self._sharded = False
        self._crashed = False
        self._every = _FALLBACK_EVERY
        self._log = False
        self._views: dict[int, _OptimizerView] = {}
        self._buf: Optional[torch.Tensor] = None
        self._row = 0
        self._rows: list[_Row] = []
        self._stepped = 0  # batches in which an optimizer stepped
        self._batch_patterns: list[_Pattern] = []
        self._batch_step: Optional[int] = None
        self._batch_seen: set[int] = set()
        self._measure_weights = False
        self._measure_update = False
        self._last_weight_sq: Optional[torch.Tensor] = None
        self._update_valid: Optional[torch.Tensor] = None
        self._copies: list[tuple[int, list[torch.Tensor], _Pattern, list[torch.Tensor], torch.Tensor]] = []
        self._spare: dict[int, tuple[_Pattern, list[torch.Tensor]]] = {}
        # host history, one row per step (thinned beyond _HISTORY_STEPS)
        self._hist_grad: list[torch.Tensor] = []
        self._hist_weight: list[torch.Tensor] = []
        self._hist_trainable: list[torch.Tensor] = []
        self._hist_present: list[torch.Tensor] = []
        self._hist_meta: list[tuple[int, int, int]] = []
        self._upd_sq: list[torch.Tensor] = []
        self._upd_weight: list[torch.Tensor] = []
        self._upd_valid: list[torch.Tensor] = []
        self._upd_meta: list[tuple[int, int, int]] = []
        self._global_recent: list[float] = []  # the last 200 finite global gradient norms
        self._global_max = -math.inf
        self._global_seen = 0
        self._bin_of: list[int] = []
        self._bin_masks: list[torch.Tensor] = []
        self._bin = 0
        self._early = _EARLY_UPDATE_STEPS
        self._zero_lr_groups: dict[tuple[int, int], tuple[str, list[int], dict]] = {}
        self._early_max = -math.inf
        self._early_spike: Optional[tuple[float, torch.Tensor, _Row]] = None
        self._automatic = True
        self._counts: Optional[N.GradientCounts] = None
        self._first_meta: Optional[tuple[int, int, int]] = None
        self._probe_targets: list[str] = []
        self._probe_handles: list[Any] = []
        self._probe_ran: dict[str, bool] = {}
        self._probed = False
        self._reported: set[tuple] = set()
        self._resets: Optional[ResetWatch] = None
        # The backward hook exists only under manual optimization (Lightning skips a hook that is None).
        self.__dict__.pop("on_before_backward", None)

    # ------------------------------------------------------------------ hooks

    def _watch_resets(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: Any) -> None:
        if self._resets is not None:
            self._resets.before_backward()

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._reset()
        self._sharded = type(trainer.strategy).__name__ in _SHARDED_STRATEGIES
        self._automatic = bool(pl_module.automatic_optimization)
        self._active = bool(self.active_checks) and (trainer.is_global_zero or self._sharded)
        if not self._active:
            return
        try:
            self.layers = N.layer_map(pl_module, self.group_depth, self.group_regex, self.max_tags)
            if not len(self.layers):
                self._active = False
                for check in self.active_checks:
                    self.skip(trainer, check, "the model has no parameters")
                return
            every = self.log_every_n_steps if self.log_every_n_steps is not None else trainer.log_every_n_steps
            self._log = every > 0
            self._every = every if every > 0 else _FALLBACK_EVERY
            self._counts = N.GradientCounts.empty(len(self.layers))
            self._plan_bins()
            if not pl_module.automatic_optimization:
                # Manual optimization leaves zero_grad() to the user: watch when each optimizer's .grad is reset.
                self._resets = ResetWatch(trainer.optimizers)
                self.on_before_backward = self._watch_resets
            for quantity, title in (
                ("grad_norm", "gradient L2 norm per layer (pre-clip)"),
                ("weight_norm", "weight L2 norm per layer"),
                ("update_ratio", "update ratio ||dw||/||w|| per layer"),
            ):
                tensorboard.add_layout_chart(trainer, "sanity: norms", title, tensorboard.tag(quantity, ".*"))
        except Exception as err:  # a check must never lose the user's run
            self._fail(trainer, err)

    def _plan_bins(self) -> None:
        """Layers in order, packed into bins of at most max(largest layer, ``_UPDATE_BIN_MIN``) elements."""
        numels = self.layers.numels
        budget = max(max(numels, default=0), _UPDATE_BIN_MIN)
        bin_of, b, filled = [], 0, 0
        for n in numels:
            if filled and filled + n > budget:
                b, filled = b + 1, 0
            bin_of.append(b)
            filled += n
        self._bin_of = bin_of
        self._bin_masks = [torch.tensor([x == k for x in bin_of], dtype=torch.bool) for k in range(b + 1)]
        # Each layer is measured at least twice in the first steps (a learning rate far too high shows there).
        self._early = max(_EARLY_UPDATE_STEPS, 2 * len(self._bin_masks))

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if not self._active:
            return
        self._batch_patterns = []
        self._batch_step = None
        self._batch_seen = set()
        self._update_valid = None
        self._measure_weights = self._stepped < self._early or (self._stepped + 1) % self._every == 0
        self._measure_update = self.update_ratio and self._measure_weights
        if self._probe_targets and not self._probed:
            self._arm_probe(pl_module)

    @override
    def on_before_optimizer_step(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", optimizer: Optimizer) -> None:
        if not self._active:
            return
        try:
            with torch.no_grad():
                self._record(trainer, optimizer)
        except Exception as err:
            self._fail(trainer, err)

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._probe_handles:
            self._disarm_probe()
        if not self._active or self._batch_step is None:
            return  # an accumulation micro-batch, or no optimizer stepped
        try:
            if self._copies or self._spare:
                with torch.no_grad():
                    self._finish_updates()
            if self._measure_update and len(self._bin_masks) > 1:
                self._bin = (self._bin + 1) % len(self._bin_masks)  # the next measuring step takes the next bin
            weighed = _any(self._batch_patterns, "owned", len(self.layers)) if self._measure_weights else None
            row = _Row(self._batch_step, trainer.current_epoch, batch_idx, self._batch_patterns, self._update_valid,
                       weighed)
            self._rows.append(row)
            self._row += 1
            self._stepped += 1
            if self._stepped == 1:
                self._plan_probe(row)
            if self._stepped % self._every == 0 or self._row >= self._buf.shape[0]:
                self._flush(trainer, log=self._log and self._stepped % self._every == 0)
        except Exception as err:
            self._fail(trainer, err)

    @override
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        # Runs before the summary's on_exception (callbacks are called in order): no collectives after a crash.
        self._crashed = True
        self._disarm_probe()
        self._copies.clear()
        self._spare.clear()

    @override
    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self._disarm_probe()
        self._copies.clear()
        self._spare.clear()

    # ------------------------------------------------------------------ measuring

    def _view(self, optimizer: Optimizer, device: torch.device) -> _OptimizerView:
        view = self._views.get(id(optimizer))
        if view is None or view.signature != _signature(optimizer):
            if view is not None:
                view.fold(self._buf)  # its buffered steps, before its layout changes
            view = self._views[id(optimizer)] = _OptimizerView(optimizer, self.layers, device)
        return view

    def _record(self, trainer: "pl.Trainer", optimizer: Optimizer) -> None:
        if id(optimizer) in self._batch_seen:
            return  # manual optimization stepping the same optimizer twice in a batch: the first step counts
        self._batch_seen.add(id(optimizer))
        if self._buf is None:
            first = next((p for g in optimizer.param_groups for p in g["params"]), None)
            if first is None:
                return
            L = len(self.layers)
            self._buf = torch.zeros(min(self._every, _BUFFER_STEPS), 3 * L, dtype=torch.float32, device=first.device)
        view = self._view(optimizer, self._buf.device)
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
        if self._batch_step is None:
            self._batch_step = trainer.global_step
        if self._resets is not None:
            self._resets.stepped(optimizer, self._batch_step)
        self._batch_patterns.append(pattern)
        row = view.grad_norm_row(self._row, self._buf.shape[0])
        if pattern.present is None:
            norms = N.tensor_norms(grads, widen=view.widen, out=row)
            if len(params) == view.optimizer_params:
                share_grad_norms(trainer, optimizer, params, norms)  # the non-finite sentinel's flag reads them
        elif present_grads:
            row.index_copy_(0, pattern.present_index, N.tensor_norms(present_grads, widen=view.widen))
        if self._measure_weights:
            # Weights move slowly: read on logging steps (and the first steps), carried forward in between.
            view.add_weight_norms(self._buf[self._row])
        if self.histogram_every_n_steps and self._stepped % self.histogram_every_n_steps == 0:
            self._histograms(trainer, view, pattern, grads)
        if self._measure_update and present_grads:
            whole = len(self._bin_masks) <= 1
            if whole:
                stepped = params if pattern.present is None else [params[i] for i in pattern.present]
                index = pattern.update_index
            else:  # this step's bin of layers only: the copy stays within the largest layer
                chosen, index = view.bin_subset(pattern, self._bin, self._bin_of)
                stepped = [params[i] for i in chosen]
            spare = self._spare.pop(id(optimizer), None)
            if spare is not None and spare[0] is pattern and whole:
                torch._foreach_copy_(spare[1], stepped)
                before = spare[1]
            else:
                spare = None  # freed before the new copy is made
                before = torch._foreach_mul(stepped, 1.0) if stepped else []
            if stepped:
                self._copies.append((id(optimizer), stepped, pattern, before, index))
            valid = self._update_valid if self._update_valid is not None else torch.zeros(len(self.layers), dtype=torch.bool)
            measured = self._lr_positive_layers(optimizer, view, pattern)
            self._update_valid = valid | (measured if whole else measured & self._bin_masks[self._bin])

    def _lr_positive_layers(self, optimizer: Optimizer, view: _OptimizerView, pattern: _Pattern) -> torch.Tensor:
        """Layers with a gradient in this step; those in a parameter group with lr 0 are noted for naming.

        A trainable layer with gradients whose group has lr 0 does not move: it is judged like any other (a
        frozen group is frozen by requires_grad=False, which leaves it without a gradient).
        """
        for g, group in enumerate(optimizer.param_groups):
            # a tensor learning rate (capturable optimizers) would need a device read: assume it is non-zero
            if not isinstance(group.get("lr"), torch.Tensor) and group.get("lr") == 0:
                key = (id(optimizer), g)
                if key not in self._zero_lr_groups:
                    layers = sorted({view.layer[i] for i, gi in enumerate(view.group) if gi == g})
                    self._zero_lr_groups[key] = (f"param group {g} of {type(optimizer).__name__}", layers, group)
        return pattern.has_grad

    def _finish_updates(self) -> None:
        """``||w_after - w_before||^2`` per layer into the buffer's third block, then free the copies.

        On CPU, when the next step measures again (every step at ``norms_log_every_n_steps=1``, and the first
        steps), the copy's memory is reused by it instead of allocated afresh: fresh CPU allocations of this
        size cost page faults. It is freed as soon as a step does not measure; on accelerators (caching
        allocators) it is always freed at once.
        """
        reuse = self._buf.device.type == "cpu" and self.update_ratio and len(self._bin_masks) <= 1 and (
            self._stepped + 1 < self._early or (self._stepped + 2) % self._every == 0
        )
        for key, params, pattern, before, index in self._copies:
            torch._foreach_sub_(before, params)
            N.layer_sum_of_squares(before, index, 3 * len(self.layers), out=self._buf[self._row])
            if reuse:
                self._spare[key] = (pattern, before)
        self._copies.clear()
        if not reuse:
            self._spare.clear()

    def _histograms(self, trainer: "pl.Trainer", view: _OptimizerView, pattern: _Pattern, grads: list) -> None:
        writers = tensorboard.writers(trainer)
        if not writers:
            return
        layers = self.layers
        by_group: dict[int, tuple[list, list]] = {}
        for p, g, layer in zip(view.params, grads, view.layer):
            weights, gradients = by_group.setdefault(layers.group_of[layer], ([], []))
            weights.append(p.detach().flatten().float())
            if g is not None and not g.is_sparse:
                gradients.append(g.flatten().float())
        for group, (weights, gradients) in by_group.items():
            name = layers.groups[group]
            for writer in writers:
                writer.add_histogram(tensorboard.tag("weight_hist", name), torch.cat(weights).cpu(), trainer.global_step)
                if gradients:
                    writer.add_histogram(tensorboard.tag("grad_hist", name), torch.cat(gradients).cpu(), trainer.global_step)

    # ------------------------------------------------------------------ reading the buffer

    def _flush(self, trainer: "pl.Trainer", log: bool) -> None:
        rows = self._row
        if rows == 0 or self._buf is None:
            return
        for view in self._views.values():
            view.fold(self._buf)
        device_rows = self._buf[:rows]
        if self._sharded:
            torch.distributed.all_reduce(device_rows)  # sums of squares of the shards add up to the whole
        data = device_rows.to("cpu", torch.float64)  # the one host-device transfer of this logging step
        device_rows.zero_()
        self._row = 0
        meta, self._rows = self._rows, []
        if not trainer.is_global_zero:
            return
        L = len(self.layers)
        grad_sq, weight_sq, update_sq = data[:, :L], data[:, L:2 * L], data[:, 2 * L:]
        self._carry_weights(weight_sq, meta)
        trainable = torch.stack([_any(r.patterns, "trainable", L) for r in meta])
        present = torch.stack([_any(r.patterns, "has_grad", L) for r in meta])
        if self._sharded:
            present = trainable.clone()  # "no gradient" may just be another rank's shard
        where = torch.tensor([(r.step, r.epoch, r.batch_idx if r.batch_idx is not None else -1) for r in meta])
        self._counts.update(trainable, present, grad_sq, where)
        if self._first_meta is None:
            self._first_meta = (meta[0].step, meta[0].epoch, meta[0].batch_idx)
        self._judge_spikes(trainer, grad_sq, meta)
        for i, r in enumerate(meta):
            if r.update_valid is not None:
                self._upd_sq.append(update_sq[i])
                self._upd_weight.append(weight_sq[i])
                self._upd_valid.append(r.update_valid & (grad_sq[i] > 0))
                self._upd_meta.append((r.step, r.epoch, r.batch_idx))
        self._hist_grad.append(grad_sq)
        self._hist_weight.append(weight_sq)
        self._hist_trainable.append(trainable)
        self._hist_present.append(present)
        self._hist_meta.extend((r.step, r.epoch, r.batch_idx) for r in meta)
        self._thin_history()
        if log:
            self._log_last(trainer, grad_sq[-1], weight_sq[-1], update_sq[-1], present[-1], meta[-1])

    def _weigh_last_row(self) -> None:
        """End of fit: read the weights once more for the last buffered step, so the judgements see them as they
        ended instead of carried from the last logging step (they include the last update: close enough)."""
        if not self._rows or self._rows[-1].weighed is not None or self._buf is None:
            return
        L = len(self.layers)
        weighed = torch.zeros(L, dtype=torch.bool)
        with torch.no_grad():
            row = self._buf[self._row - 1]
            row[L:2 * L] = 0
            for view in self._views.values():
                if view.params:
                    view.add_weight_norms(row)
                    weighed |= view.owned
        self._rows[-1].weighed = weighed

    def _carry_weights(self, weight_sq: torch.Tensor, meta: list[_Row]) -> None:
        """Fill the rows (and layers) whose weights were not read with the latest reading, in place."""
        last = self._last_weight_sq if self._last_weight_sq is not None else torch.zeros(weight_sq.shape[1], dtype=weight_sq.dtype)
        for i, r in enumerate(meta):
            if r.weighed is not None:
                last = torch.where(r.weighed, weight_sq[i], last)
            weight_sq[i] = last
        self._last_weight_sq = last

    def _thin_history(self) -> None:
        if sum(t.shape[0] for t in self._hist_grad) <= _HISTORY_STEPS:
            return
        for name in ("_hist_grad", "_hist_weight", "_hist_trainable", "_hist_present"):
            setattr(self, name, [torch.cat(getattr(self, name))[::2]])
        self._hist_meta = self._hist_meta[::2]
        if len(self._upd_meta) > _HISTORY_STEPS:
            for name in ("_upd_sq", "_upd_weight", "_upd_valid", "_upd_meta"):
                setattr(self, name, getattr(self, name)[::2])

    def _log_last(self, trainer, grad_sq, weight_sq, update_sq, present, row: _Row) -> None:
        layers = self.layers
        G = len(layers.groups)
        metrics: dict[str, float] = {
            tensorboard.tag("grad_norm", "global"): math.sqrt(grad_sq.sum().item()),
            tensorboard.tag("weight_norm", "global"): math.sqrt(weight_sq.sum().item()),
        }
        group_grad = N.group_sum(grad_sq, layers.group_of, G).sqrt().tolist()
        group_weight_sq = N.group_sum(weight_sq, layers.group_of, G)
        group_present = N.group_sum(present.double(), layers.group_of, G).tolist()
        for g, name in enumerate(layers.groups):
            metrics[tensorboard.tag("weight_norm", name)] = math.sqrt(group_weight_sq[g].item())
            if group_present[g] > 0:
                metrics[tensorboard.tag("grad_norm", name)] = group_grad[g]
        if row.update_valid is not None:
            measured = row.update_valid.double()
            upd = N.group_sum(update_sq * measured, layers.group_of, G)
            base = N.group_sum(weight_sq * measured, layers.group_of, G)
            for g, name in enumerate(layers.groups):
                if base[g] > 0:
                    metrics[tensorboard.tag("update_ratio", name)] = math.sqrt(upd[g].item() / base[g].item())
        tensorboard.log_scalars(trainer, metrics, step=row.step)

    # ------------------------------------------------------------------ probe for layers without gradients

    def _plan_probe(self, row: _Row) -> None:
        """After the first step: layers that are trainable but got no gradient are watched for one batch."""
        L = len(self.layers)
        missing = _any(row.patterns, "trainable", L) & ~_any(row.patterns, "has_grad", L)
        self._probe_targets = [self.layers.names[i] for i in missing.nonzero().flatten().tolist()]

    def _arm_probe(self, pl_module: "pl.LightningModule") -> None:
        modules = dict(pl_module.named_modules())
        for name in self._probe_targets:
            module = modules.get("" if name == N.ROOT else name)
            if module is None:
                continue

            def hook(_module, _args, _output, name=name) -> None:
                # Only notes that the module ran, and whether autograd was recording: no observer effect.
                self._probe_ran[name] = self._probe_ran.get(name, False) or torch.is_grad_enabled()

            self._probe_handles.append(module.register_forward_hook(timed(hook)))
        self._probed = True

    def _disarm_probe(self) -> None:
        for handle in self._probe_handles:
            handle.remove()
        self._probe_handles = []

    # ------------------------------------------------------------------ judgements

    def _judge_spikes(self, trainer: "pl.Trainer", grad_sq: torch.Tensor, meta: list[_Row]) -> None:
        """The global gradient norm of each buffered step against the running history before it.

        "10x above the level before" is measured against the first steps (``N.SPIKE_EARLY``), not against every
        step before: an explosion that ramps up over a few steps (x5 per step) would otherwise always sit
        within 10x of its own previous step. A spike within the first ``N.SPIKE_WARMUP`` steps has no running
        median yet: it is kept as a candidate and judged at the end against the whole run's median.
        """
        values = grad_sq.sum(dim=1).sqrt().tolist()
        watching = "exploding-gradient" in self.active_checks and ("exploding-gradient", "spike") not in self._reported
        recent = self._global_recent
        for i, value in enumerate(values):
            if not math.isfinite(value):
                continue
            seen = self._global_seen
            reference = self._early_max if seen >= N.SPIKE_EARLY else self._global_max
            if watching and (seen == 0 or value >= N.SPIKE_OVER_MAX * reference):
                if seen < N.SPIKE_WARMUP:
                    if self._early_spike is None or value > self._early_spike[0]:
                        self._early_spike = (value, grad_sq[i].clone(), meta[i])
                else:
                    factor = N.gradient_spike(torch.tensor(recent[-200:], dtype=torch.float64), value,
                                              factor=self.threshold("exploding-gradient", "spike"),
                                              reference=reference)
                    if factor is not None:
                        watching = False
                        self._report_spike(trainer, grad_sq[i], meta[i], value, factor)
            recent.append(value)
            self._global_seen += 1
            self._global_max = max(self._global_max, value)
            if seen < N.SPIKE_EARLY:
                self._early_max = max(self._early_max, value)
        self._global_recent = recent[-200:]

    def _judge_early_spike(self, trainer: "pl.Trainer", norms: torch.Tensor) -> None:
        """A spike within the first steps, judged against the median of the whole run."""
        if self._early_spike is None or ("exploding-gradient", "spike") in self._reported:
            return
        if "exploding-gradient" not in self.active_checks or norms.numel() < 2 * N.SPIKE_WARMUP:
            return
        value, layer_sq, row = self._early_spike
        median = N.median_finite(norms)
        factor = self.threshold("exploding-gradient", "spike")
        if self._first_meta is not None and row.step == self._first_meta[0]:
            # No step before the first: judged by what its update did to the weights (checks/first_step.py).
            i = next((k for k, m in enumerate(self._upd_meta) if m[0] == row.step), None)
            found = i is not None and first_step_spike(
                value, median, self._upd_sq[i][self._upd_valid[i]], self._upd_weight[i][self._upd_valid[i]],
                factor, self.threshold("update-ratio", "too_large"))
            if found:
                self._report_spike(trainer, layer_sq, row, value, found["factor"], found["update_ratio"])
        elif median > 0 and value >= factor * median:
            self._report_spike(trainer, layer_sq, row, value, value / median)

    def _report_spike(self, trainer: "pl.Trainer", layer_sq: torch.Tensor, row: _Row, value: float,
                      factor: float, first_update: Optional[float] = None) -> None:
        median = value / factor
        layer, layer_value = self._spiking_layer(layer_sq)
        self._reported.add(("exploding-gradient", "spike"))
        clip = trainer.gradient_clip_val if self._automatic else None
        message = (f"The global gradient norm jumped to {value:.3g}, {factor:.3g}x its running median of "
                   f"{median:.3g}; the largest part is in `{layer}` (gradient norm {layer_value:.3g}).")
        if first_update is not None:
            message += (f" It was the first step, and its update moved the weights by {first_update:.3g}x their own "
                        "norm.")
        if clip:
            # Norms are read before clipping: the step itself was bounded, which is what clipping is for.
            message += (f" Gradient clipping (gradient_clip_val={clip}) bounded the update: norms are read before "
                        "clipping.")
        self._report(
            trainer, "exploding-gradient", Severity.INFO if clip else Severity.WARNING, message,
            "Lower the learning rate or add warm-up, clip gradients (Trainer(gradient_clip_val=1.0)), check "
            "the initialisation scale and the loss for divisions by small numbers, and add normalisation "
            "layers or weight decay.",
            where=layer, meta=(row.step, row.epoch, row.batch_idx),
            data={"kind": "spike", "grad_norm": value, "running_median": median, "factor": factor,
                  "layer_grad_norm": layer_value, "clipped": bool(clip),
                  **({"first_step_update_ratio": first_update} if first_update is not None else {})},
        )

    def _spiking_layer(self, layer_sq: torch.Tensor) -> tuple[str, float]:
        norms = layer_sq.sqrt()
        norms = torch.where(torch.isfinite(norms), norms, torch.zeros_like(norms))
        layer = int(norms.argmax())
        return self.layers.names[layer], norms[layer].item()

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self._active or self.layers is None:
            return
        self._disarm_probe()
        self._copies.clear()
        self._spare.clear()
        if not (self._sharded and self._crashed):  # after a crash other ranks may not reach a collective
            self._weigh_last_row()
            self._flush(trainer, log=False)
        if not trainer.is_global_zero or not self._hist_grad:
            for check in self.active_checks:
                if trainer.is_global_zero:
                    self.skip(trainer, check, "no optimizer step was taken")
            return
        grad_sq = torch.cat(self._hist_grad)
        weight_sq = torch.cat(self._hist_weight)
        present = torch.cat(self._hist_present)
        steps = int(self._counts.observed.max())
        self._conclude_dead(trainer, steps)
        vanishing = self._conclude_vanishing(trainer, grad_sq, weight_sq, present)
        self._judge_early_spike(trainer, grad_sq.sum(1).sqrt())
        self._conclude_growth(trainer, grad_sq)
        self._conclude_weights(trainer, weight_sq)
        self._conclude_updates(trainer, exclude=vanishing)
        global_norms = grad_sq.sum(1).sqrt()
        self.detail(trainer, "exploding-gradient",
                    f"global grad norm median {N.median_finite(global_norms):.3g}, max {_finite_max(global_norms):.3g}")
        died = N.dead_layers(self._counts)["died"] if "dead-gradient" in self.active_checks else []
        since = self._counts.dead_since
        self.detail(trainer, "dead-gradient", f"{len(self.layers)} layers over {steps} steps" + (
            f"; {N.short_list([self.layers.names[i] for i in died])} dead from step {int(since[died, 0].min())}"
            if died and since is not None and bool((since[died, 0] >= 0).all()) else ""))

    def _conclude_dead(self, trainer: "pl.Trainer", steps: int) -> None:
        if "dead-gradient" not in self.active_checks:
            return
        names, counts = self.layers.names, self._counts
        dead = N.dead_layers(counts)
        if self._sharded:
            dead["missing"] = []
        observed = [i for i in range(len(names)) if counts.observed[i] >= N.MIN_STEPS]
        cut_off = [i for i in dead["missing"] if self._probe_ran.get(names[i])]
        no_grad_mode = [i for i in dead["missing"] if names[i] in self._probe_ran and not self._probe_ran[names[i]]]
        unused = [i for i in dead["missing"] if names[i] not in self._probe_ran]
        broken = set(cut_off) | set(dead["zero"]) | set(dead["died"])
        everything = bool(observed) and broken >= set(observed)
        meta = self._first_meta
        if everything:
            kinds = sorted({k for k, v in dead.items() if v and k != "missing"} | ({"missing"} if cut_off else set()))
            self._report(
                trainer, "dead-gradient", Severity.ERROR,
                f"Every trainable layer ({len(observed)}) got a zero or missing gradient on every step over "
                f"{steps} steps: nothing in the model is learning.",
                "Check the loss: a weight of 0 on the loss, a loss computed from detached tensors or from "
                "non-differentiable ops (round, argmax, comparisons, .item()), or an all-zero initialisation.",
                where=None, meta=meta, data={"layers": [names[i] for i in observed], "kinds": kinds, "steps": steps},
            )
            return
        if cut_off:
            self._report_layers(
                trainer, cut_off, Severity.WARNING, meta,
                "ran in the forward pass but never received a gradient (grad is None) over {steps} steps: "
                "{its} output does not reach the loss through differentiable ops",
                "Look for .detach(), .item(), .numpy(), torch.no_grad() or integer ops such as argmax between "
                "these layers and the loss; if they are meant to stay fixed, set requires_grad_(False).",
                steps, kind="missing")
        if dead["zero"]:
            self._report_layers(
                trainer, dead["zero"], Severity.WARNING, meta,
                "got an exactly zero gradient on every step over {steps} steps",
                "Look for ops with zero derivative between these layers and the loss (torch.round, floor, sign, "
                "clamp that is always active), a loss term multiplied by 0, an all-zero initialisation, or "
                "ReLUs after them that are always off (see dead-activations).",
                steps, kind="zero")
        if dead["died"]:
            # Located where the gradients died (the earliest of the layers), not at the first step of the run.
            since = counts.dead_since[dead["died"]] if counts.dead_since is not None else None
            died_meta = meta
            if since is not None and bool((since[:, 0] >= 0).all()):
                step, epoch, batch_idx = since[int(since[:, 0].argmin())].tolist()
                died_meta = (step, epoch, batch_idx if batch_idx >= 0 else None)
            self._report_layers(
                trainer, dead["died"], Severity.WARNING, died_meta,
                "learned at first, then got zero or missing gradients on every step from step "
                f"{died_meta[0]} to the end of the run",
                "Units may have died after a large update: lower the learning rate, use LeakyReLU/GELU, and "
                "check dead-activations.", steps, kind="died")
        if no_grad_mode:
            self._report_layers(
                trainer, no_grad_mode, Severity.INFO, meta,
                "{are} trainable and in the optimizer but runs only under torch.no_grad() in training",
                "If it is meant to stay fixed, set requires_grad_(False) and leave it out of the optimizer "
                "(weight decay still changes it otherwise).", steps, kind="no_grad")
        if unused:
            self._report_layers(
                trainer, unused, Severity.INFO, meta,
                "{are} trainable and in the optimizer but {were} never called in training_step, so no gradient ever reaches {them}",
                "If it is used only in validation or not at all, freeze it or leave it out of the optimizer.",
                steps, kind="unused")

    def _report_layers(self, trainer, layers: list[int], severity, meta, what: str, advice: str, steps: int, kind: str) -> None:
        names = [self.layers.names[i] for i in layers]
        if len(names) == 1:
            subject, what = f"Layer `{names[0]}`", what.replace("{are}", "is").replace("{were}", "was").replace("{them}", "it").replace("{its}", "its")
        else:
            subject = f"{len(names)} layers ({N.short_list(names)})"
            what = what.replace("{are}", "are").replace("{were}", "were").replace("{them}", "them").replace("{its}", "their").replace("runs", "run")
        self._report(
            trainer, "dead-gradient", severity, f"{subject} {what.format(steps=steps)}.", advice,
            where=N.common_module(names) if len(names) > 1 else names[0], meta=meta,
            data={"layers": names, "kind": kind, "steps": steps},
        )

    def _conclude_vanishing(self, trainer, grad_sq, weight_sq, present) -> set[int]:
        if "vanishing-gradient" not in self.active_checks:
            return set()
        eligible = torch.tensor([k == "matrix" for k in self.layers.kinds])
        found = N.vanishing_layers(grad_sq, weight_sq, self.layers.numels, eligible, present,
                                   rms_limit=self.threshold("vanishing-gradient", "rms"),
                                   relative_limit=self.threshold("vanishing-gradient", "relative"))
        if not found:
            return set()
        names = [self.layers.names[i] for i, _, _ in found]
        gap = max(g for _, g, _ in found)
        rms = max(r for _, _, r in found)
        rel = N.relative_gradients(grad_sq, weight_sq)
        ref_layer = int(torch.nan_to_num(rel, nan=-1.0).median(dim=0).values.argmax())
        self._report(
            trainer, "vanishing-gradient", Severity.WARNING,
            f"Gradients vanish in {len(names)} layer(s) ({N.short_list(names)}): RMS gradient at most {rms:.2g} "
            f"and ||grad||/||weight|| at most {gap:.2g} times that of `{self.layers.names[ref_layer]}`, on most steps.",
            "Use ReLU/GELU instead of sigmoid/tanh in hidden layers, He/Kaiming or Xavier initialisation, "
            "normalisation layers (BatchNorm/LayerNorm) or residual connections, and normalised inputs.",
            where=N.common_module(names) if len(names) > 1 else names[0], meta=self._first_meta,
            data={"layers": names, "relative_gap": gap, "rms_grad": rms, "reference_layer": self.layers.names[ref_layer]},
        )
        return {i for i, _, _ in found}

    def _conclude_growth(self, trainer, grad_sq) -> None:
        if "exploding-gradient" not in self.active_checks or ("exploding-gradient", "spike") in self._reported:
            return
        norms = grad_sq.sum(1).sqrt()
        piling = self._resets and find_accumulating(self._resets, grad_sq, [m[0] for m in self._hist_meta],
                                                    {k: v.owned for k, v in self._views.items()}, trainer.optimizers)
        if piling:
            message, advice = accumulating_message(piling)
            self._report(trainer, "exploding-gradient", Severity.WARNING, message, advice, where=None,
                         meta=self._first_meta, data={"kind": "accumulating", **piling})
            return
        factor = N.sustained_growth(norms, factor=self.threshold("exploding-gradient", "growth"))
        if factor is None:
            return
        last = N.median_finite(norms[-max(4, norms.shape[0] // 8):])
        per_layer = grad_sq.sqrt()
        growth = per_layer[-1] / per_layer[: max(1, per_layer.shape[0] // 8)].median(dim=0).values
        layer = int(torch.nan_to_num(growth, nan=0.0, posinf=0.0).argmax())
        self._report(
            trainer, "exploding-gradient", Severity.WARNING,
            f"The global gradient norm grew {factor:.3g}x over the run to about {last:.3g} and is still rising; "
            f"`{self.layers.names[layer]}` grew the most.",
            "Lower the learning rate, clip gradients (Trainer(gradient_clip_val=1.0)), add weight decay or "
            "normalisation layers, and check the initialisation scale.",
            where=self.layers.names[layer], meta=self._hist_meta[-1],
            data={"kind": "growth", "factor": factor, "grad_norm": last},
        )

    def _conclude_weights(self, trainer, weight_sq) -> None:
        if "weight-growth" not in self.active_checks:
            return
        found = N.growing_layers(weight_sq, self.layers.numels, factor=self.threshold("weight-growth", "factor"))
        steady = not found and steady_growth(weight_sq, self.layers.numels)  # checks/weight_drift.py
        found = found or steady
        if not found:
            return
        found.sort(key=lambda item: -item[1])
        names = [self.layers.names[i] for i, _ in found]
        layer, factor = found[0]
        first = math.sqrt(weight_sq[0, layer].item())
        last = math.sqrt(weight_sq[-1, layer].item())
        self._report(
            trainer, "weight-growth", Severity.WARNING,
            f"Weight norms keep growing in {len(names)} layer(s) ({N.short_list(names)}): `{names[0]}` went from "
            f"{first:.3g} to {last:.3g} ({factor:.3g}x) and is still rising"
            + (", as fast in the second half of the run as in the first (healthy weights grow mostly early, then "
               "settle)." if steady else "."),
            "Add or increase weight decay (AdamW), lower the learning rate, check that the loss cannot be lowered "
            "by scaling weights up (an unbounded term), and consider normalisation layers.",
            where=N.common_module(names) if len(names) > 1 else names[0], meta=self._hist_meta[-1],
            data={"layers": names, "factor": factor, "first_norm": first, "last_norm": last,
                  "kind": "steady" if steady else "factor"},
        )

    def _conclude_updates(self, trainer, exclude: set[int]) -> None:
        if "update-ratio" not in self.active_checks:
            return
        if not self._upd_sq:
            if self.update_ratio:
                self.skip(trainer, "update-ratio", "no update was measured")
            else:
                self.skip(trainer, "update-ratio", "switched off (norms_update_ratio=False)")
            return
        upd, weight, valid = torch.stack(self._upd_sq), torch.stack(self._upd_weight), torch.stack(self._upd_valid)
        valid &= torch.tensor([k == "matrix" for k in self.layers.kinds]).unsqueeze(0)
        verdicts = N.update_ratio_verdicts(upd, weight, valid, too_large=self.threshold("update-ratio", "too_large"),
                                           too_small=self.threshold("update-ratio", "too_small"))
        ratios = (upd.sqrt() / weight.sqrt())[valid]
        if ratios.numel():
            self.detail(trainer, "update-ratio",
                        f"median ||dw||/||w|| {N.median_finite(ratios):.2g} over {upd.shape[0]} measurements")
        for kind, found in verdicts.items():
            groups: list = []
            # Layers whose gradients vanish do not move either; vanishing-gradient names the cause.
            found = [(i, r) for i, r in found if i not in exclude]
            if not found:
                continue
            names = [self.layers.names[i] for i, _ in found]
            ratio = max(r for _, r in found) if kind == "too_large" else min(r for _, r in found)
            if kind == "too_large":
                message = (f"Updates as large as the weights themselves in {len(names)} layer(s) "
                           f"({N.short_list(names)}): ||dw||/||w|| reached {ratio:.3g} on several steps "
                           "(healthy: about 1e-3).")
                advice = ("Lower the learning rate by 10-100x (try a learning-rate finder), add warm-up, and clip "
                          "gradients; check that the loss is averaged, not summed, over a large batch.")
            else:
                message = (f"The weights practically do not move in {len(names)} layer(s) ({N.short_list(names)}): "
                           f"median ||dw||/||w|| is {ratio:.3g} although gradients are non-zero (healthy: about 1e-3).")
                advice = ("Raise the learning rate (it may be off by orders of magnitude, e.g. 1e-10 instead of "
                          "1e-3), and check the scheduler and any parameter group with a tiny learning rate.")
                layers = {i for i, _ in found}
                # groups whose lr is still 0 at the end (a warm-up from 0 is not one)
                zero = [(n, m) for n, m, group in self._zero_lr_groups.values() if group.get("lr") == 0]
                groups = [(name, sorted(layers & set(members))) for name, members in zero]
                groups = [(name, members) for name, members in groups if members]
                if groups:
                    said = "; ".join(f"{name} (layers {N.short_list([self.layers.names[i] for i in members])})"
                                     for name, members in groups)
                    message += f" Their learning rate is 0: {said}."
                    advice = ("Give the group a non-zero lr; if the layers are meant to stay frozen, set "
                              "requires_grad_(False) on them (no gradients to compute either).")
            rows = [i for i in range(len(self._upd_meta)) if valid[i].any()]
            self._report(
                trainer, "update-ratio", Severity.WARNING, message, advice,
                where=N.common_module(names) if len(names) > 1 else names[0],
                meta=self._upd_meta[rows[0]] if rows else self._first_meta,
                data={"kind": kind, "layers": names, "ratio": ratio, "measurements": upd.shape[0],
                      **({"zero_lr_groups": [name for name, _ in groups]} if kind == "too_small" else {})},
            )

    # ------------------------------------------------------------------ plumbing

    def _report(self, trainer, check, severity, message, advice, where, meta, data) -> None:
        step, epoch, batch_idx = meta if meta is not None else (None, None, None)
        finding = self.report(trainer, check, severity, message, advice, where=where, data=data,
                              batch_idx=batch_idx, global_step=step, key=f"{check}:{data.get('kind', '')}")
        if epoch is not None and finding.global_step == step:
            finding.epoch = epoch

    def _fail(self, trainer: "pl.Trainer", err: BaseException) -> None:
        self._active = False
        self._disarm_probe()
        self._copies.clear()
        self._spare.clear()
        log.warning("lightning_sanity: NormMonitor stopped after an internal error: %r", err)
        for check in self.active_checks:
            self.skip(trainer, check, f"internal error: {err!r}")


def _any(patterns: list[_Pattern], field: str, num_layers: int) -> torch.Tensor:
    if len(patterns) == 1:
        return getattr(patterns[0], field)  # the usual case: one optimizer; callers only read it
    out = torch.zeros(num_layers, dtype=torch.bool)
    for pattern in patterns:
        out |= getattr(pattern, field)
    return out


def _finite_max(values: torch.Tensor) -> float:
    finite = values[torch.isfinite(values)]
    return finite.max().item() if finite.numel() else math.nan


def _check_int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"`{name}` must be {allowed}, got {value!r}.")



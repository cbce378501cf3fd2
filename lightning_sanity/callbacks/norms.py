r"""
Norm monitor
^^^^^^^^^^^^

Per-layer gradient norms, weight norms and update-to-weight ratios, logged to TensorBoard and judged for
dead, vanishing and exploding gradients, unbounded weight growth and learning rates far off the mark.

Glue only: measuring in :mod:`~.norm_meter` and :mod:`~.gradient_probe`, history in :mod:`~.norm_history`,
verdicts in :mod:`~.norm_verdicts` (:mod:`lightning_sanity.checks.norms`), TensorBoard in :mod:`~.norm_charts`.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from torch.optim import Optimizer
from typing_extensions import override

from lightning_sanity import stride as stride_mod
from lightning_sanity.cadence import trainer_chart_every
from lightning_sanity.callbacks import norm_charts
from lightning_sanity.callbacks._idle_optimizers import IdleOptimizerHooks
from lightning_sanity.callbacks.base import SanityCallback, Threshold, check_int
from lightning_sanity.callbacks.gradient_probe import GradientProbe
from lightning_sanity.callbacks.low_precision import RoundingWatch, conclude_rounds_away
from lightning_sanity.callbacks._optimizer_eps import EpsWatch, conclude_eps
from lightning_sanity.callbacks.norm_history import NormHistory, SpikeWatch, finite_max
from lightning_sanity.callbacks.norm_meter import NormMeter, any_layers
from lightning_sanity.callbacks.norm_verdicts import NormVerdicts
from lightning_sanity.checks import layers as LM
from lightning_sanity.checks import norms as N
from lightning_sanity.checks.accumulation import ResetWatch
from lightning_sanity.checks.naming import short_list

log = logging.getLogger(__name__)

#: Cadence used for judging when the Trainer logs nothing (``log_every_n_steps=0``).
_FALLBACK_EVERY = 50
#: Strategies whose parameters are shards: per-layer sums of squares must be added across ranks.
_SHARDED_STRATEGIES = ("FSDPStrategy", "DeepSpeedStrategy", "ModelParallelStrategy")


@dataclasses.dataclass
class _RunFlags:
    """How this fit runs, as the monitor found it at its start (and whether it crashed)."""

    active: bool = False  # measuring on this rank
    sharded: bool = False  # FSDP / DeepSpeed / ModelParallel: sums of squares are all-reduced at each read
    crashed: bool = False  # no collectives after a crash
    automatic: bool = True  # automatic optimization (gradient_clip_val applies)
    log: bool = False  # log scalars at each read (False: ``log_every_n_steps=0``)


class NormMonitor(IdleOptimizerHooks, NormVerdicts, SanityCallback):
    r"""Track per-layer gradient norms, weight norms and update ratios; judge them at the end of fit.

    A *layer* is a module that owns parameters directly (``nn.Linear``, ``nn.Conv2d``, ``nn.LayerNorm``, ...);
    its norm is the L2 norm over all its parameters together. Gradients are read in
    ``on_before_optimizer_step``, where Lightning guarantees finished gradients: accumulated over
    ``accumulate_grad_batches``, unscaled by AMP, and **before gradient clipping**. Weight norms are read at the
    same point (the weights before the step) on logging steps and on the first 10 steps; weights move slowly,
    so the judgements carry the latest reading over the steps in between, and the weights are read once more at
    the end of fit. The update ratio ``||w_after - w_before|| / ||w_before||`` is measured on the same steps, from
    a transient copy of the stepped parameters, in bins of at most a quarter of the largest layer, one bin per
    measuring step in rotation (:mod:`~lightning_sanity.callbacks._update_bins`). Several optimizers and manual
    optimization work alike.

    Cost: per measured optimizer step (all of a dense window, then a stride set by the measured cost:
    :mod:`lightning_sanity.stride`), one fused ``torch._foreach_norm`` over the gradients into a device buffer,
    reduced per layer and read (one host-device transfer) every ``norms_log_every_n_steps`` steps only.

    Checks (judged at the end of fit, spikes as they are read):

    - ``dead-gradient``: a trainable layer whose gradient is None, or exactly zero, on every step.
    - ``vanishing-gradient``: a layer's gradient vanishingly small against its weights and against the
      layers with the largest gradients, sustained.
    - ``exploding-gradient``: the global gradient norm jumps by 3 orders of magnitude against its running
      median (and 10x above the first steps' level), or grows by 2 orders of magnitude and keeps rising; a spike
      under ``gradient_clip_val`` is info (clipping bounded the step).
    - ``weight-growth``: the model's weight norm growing at a rate that does not slow down
      (:mod:`~lightning_sanity.checks.weight_drift`).
    - ``update-ratio``: ``||dw||/||w||`` of a weight layer at or above 1 (learning rate far too high) or at or
      below 1e-7 with non-zero gradients (not learning), sustained; kind ``rounds-away``: bf16/fp16 weights with no
      float32 copy whose Adam-family steps are below half an ulp; kind ``idle-optimizer``: a manual loop's
      optimizer that never steps while its parameters get gradients.

    TensorBoard tags (scalars, on global rank 0, at every logging step; ``<layer>`` is the module name as in
    ``named_modules()``, or its group, see ``norms_max_tags``):

    - ``sanity/grad_norm/<layer>`` (pre-clip) and ``sanity/weight_norm/<layer>``, L2 norms, and ``.../global``;
      ``sanity/update_ratio/<layer>``: ``||dw|| / ||w||`` of the layer for the step.
    - ``sanity/grad_hist/<layer>``, ``sanity/weight_hist/<layer>``: histograms, only when
      ``norms_histogram_every_n_steps`` is set.

    A custom-scalars chart per quantity (category ``sanity: norms``) draws a line per layer; the scalars also go to
    every other logger (CSV, ...).

    Under DDP only global rank 0 measures and logs (gradients are already all-reduced). Under sharded strategies
    every rank measures its shards and the per-layer sums of squares are all-reduced at each read; only all-zero
    gradients count as dead there ("no gradient" may be another rank's shard).

    Args:
        norms_log_every_n_steps: read, log and judge every this many optimizer steps; None follows the
            Trainer's ``log_every_n_steps`` fitted to the planned run (:mod:`lightning_sanity.cadence`). 0 logs
            nothing (judgements still run, reading every 50 steps).
        norms_group_depth: group layers by their first ``depth`` module-name parts for logging
            (``encoder.layers.3``); judgements stay per layer.
        norms_group_regex: group layers for logging by this regular expression (its first group, or the match,
            names the group).
        norms_max_tags: at most this many layers per quantity are logged; a model with more is grouped
            automatically at the deepest module depth that fits (judgements stay per layer).
        norms_update_ratio: measure update ratios (a transient copy of at most a quarter of the largest layer).
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
        check_int("norms_log_every_n_steps", norms_log_every_n_steps, minimum=0, optional=True)
        check_int("norms_group_depth", norms_group_depth, minimum=1, optional=True)
        check_int("norms_max_tags", norms_max_tags, minimum=1)
        check_int("norms_histogram_every_n_steps", norms_histogram_every_n_steps, minimum=0)
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
        self.layers: Optional[LM.LayerMap] = None
        self._flags = _RunFlags()
        self._meter = NormMeter(self.update_ratio, self.histogram_every_n_steps)
        self._history = NormHistory()
        self._spikes = SpikeWatch()
        self._probe = GradientProbe()
        self._reported: set[tuple] = set()
        self._resets: Optional[ResetWatch] = None
        self._rounding = RoundingWatch()  # update-ratio kind rounds-away (callbacks/low_precision.py)
        self._eps = EpsWatch()  # update-ratio kind eps-dominates (callbacks/_optimizer_eps.py)
        self._skip_batch = False  # this batch is off the stride: no row
        self.revive()  # a backward hook only under manual optimization; batch start until the probe had its batch

    # ------------------------------------------------------------------ hooks

    def _watch_resets(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: Any) -> None:
        if self._resets is not None:
            self._resets.before_backward()

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._reset()
        flags = self._flags
        flags.sharded = type(trainer.strategy).__name__ in _SHARDED_STRATEGIES
        flags.automatic = bool(pl_module.automatic_optimization)
        flags.active = bool(self.active_checks) and (trainer.is_global_zero or flags.sharded)
        if not flags.active:
            return
        try:
            self.layers = LM.layer_map(pl_module, self.group_depth, self.group_regex, self.max_tags)
            if not len(self.layers):
                flags.active = False
                for check in self.active_checks:
                    self.skip(trainer, check, "the model has no parameters")
                return
            every = self.log_every_n_steps if self.log_every_n_steps is not None else trainer_chart_every(trainer)
            flags.log = every > 0
            self._history.counts = N.GradientCounts.empty(len(self.layers))
            self._meter.start(self.layers, every if every > 0 else _FALLBACK_EVERY)
            if not pl_module.automatic_optimization:
                # Manual optimization leaves zero_grad() to the user: watch when each optimizer's .grad is reset.
                self._resets = ResetWatch(trainer.optimizers)
                self.on_before_backward = self._watch_resets
            else:  # the reset watch needs every step: only automatic optimization is strided
                self._meter.stride = stride_mod.fresh(trainer)
            norm_charts.add_norm_charts(trainer)
        except Exception as err:  # a check must never lose the user's run
            self._fail(trainer, err)

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._idle_start(trainer, pl_module)  # update-ratio kind idle-optimizer (manual optimization)
        if "update-ratio" in self.active_checks and trainer.is_global_zero:
            self._rounding.start(trainer, pl_module)  # the optimizers exist now
            self._eps.start(trainer)

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        self._rounding.read_lr()  # rounds-away: the peak lr of low-precision weights' groups (idle: nothing)
        # The meter opens the batch's state at its first optimizer step; this hook only arms the gradient probe.
        if not self._flags.active or (self._meter.stepped and (self._probe.armed_once or not self._probe.targets)):
            if not self._rounding.watching:
                self.retire("on_train_batch_start")  # planned (after the first step) and armed, or nothing to probe
            return
        if self._probe.targets and not self._probe.armed_once:
            self._probe.arm(pl_module)

    @override
    def on_before_optimizer_step(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", optimizer: Optimizer) -> None:
        self._idle_stepped(optimizer)
        self._eps.maybe_look(self, trainer, pl_module)  # once, a tenth into the run
        if not self._flags.active or self._skip_batch:
            return
        step = trainer.global_step
        if self._meter.off_stride(step):
            self._skip_batch = True
            return
        try:
            self._meter.record(trainer, optimizer, step)
            if self._resets is not None:
                self._resets.stepped(optimizer, self._meter.batch.step)
        except Exception as err:
            self._fail(trainer, err)

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._probe.handles:
            self._probe.disarm(keep_late=True)
        meter = self._meter
        if self._skip_batch:  # off the stride: counted as a step (the logging cadence counts steps), no row
            self._skip_batch, meter.stepped = False, meter.stepped + 1
            return
        if meter.batch is None or meter.batch.step is None or not self._flags.active:
            meter.batch = None
            return  # an accumulation micro-batch, or no optimizer stepped
        try:
            row = meter.end_batch(trainer.current_epoch, batch_idx)
            if meter.stepped == 1:  # the layers whose gradient was missing or exactly zero: watched on the next batch
                self._probe.plan(self.layers, row, meter.zero_layers() if "dead-gradient" in self.active_checks else None)
            chart = meter.stepped % meter.every == 0
            if meter.row >= meter.buf.shape[0] or (chart and self._flags.sharded):  # sharded: all ranks reduce
                self._flush(trainer, log=self._flags.log and chart)
            elif chart and self._flags.log:  # a chart point: its row only; the history takes the rows when full
                norm_charts.log_last(trainer, self.layers, meter, self._history)
        except Exception as err:
            self._fail(trainer, err)

    @override
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        # Runs before the summary's on_exception (callbacks are called in order): no collectives after a crash.
        self._flags.crashed = True
        self._probe.disarm()
        self._meter.release()

    @override
    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self._probe.disarm()
        self._meter.release()

    # ------------------------------------------------------------------ reading the buffer

    def _flush(self, trainer: "pl.Trainer", log: bool) -> None:
        read = self._meter.read(self._flags.sharded)
        if read is None or not trainer.is_global_zero:
            return
        data, meta = read
        history = self._history
        L = len(self.layers)
        grad_sq, weight_sq, update_sq = data[:, :L], data[:, L:2 * L], data[:, 2 * L:]
        history.carry_weights(weight_sq, meta)
        trainable = torch.stack([any_layers(r.patterns, "trainable", L) for r in meta])
        present = torch.stack([any_layers(r.patterns, "has_grad", L) for r in meta])
        if self._flags.sharded:
            present = trainable.clone()  # "no gradient" may just be another rank's shard
        where = torch.tensor([(r.step, r.epoch, r.batch_idx if r.batch_idx is not None else -1) for r in meta])
        history.counts.update(trainable, present, grad_sq, where)
        if history.first_meta is None:
            history.first_meta = (meta[0].step, meta[0].epoch, meta[0].batch_idx)
        self._judge_spikes(trainer, grad_sq, meta)
        for i, r in enumerate(meta):
            if r.update_valid is not None:
                history.upd_sq.append(update_sq[i])
                history.upd_weight.append(weight_sq[i])
                history.upd_valid.append(r.update_valid & (grad_sq[i] > 0))
                history.upd_meta.append((r.step, r.epoch, r.batch_idx))
        history.grad.append(grad_sq)
        history.weight.append(weight_sq)
        history.trainable.append(trainable)
        history.present.append(present)
        history.meta.extend((r.step, r.epoch, r.batch_idx) for r in meta)
        history.thin()
        if log:
            norm_charts.log_norms(trainer, self.layers, grad_sq[-1], history.chart_row(weight_sq[-1]), update_sq[-1],
                                  present[-1], meta[-1])

    # ------------------------------------------------------------------ judgements (see NormVerdicts)

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        try:
            self._conclude_norms(trainer, pl_module)
        finally:  # judged from the weights' dtype and the lr, whatever the norms measured
            conclude_rounds_away(self, self._rounding, trainer)
            conclude_eps(self, self._eps, trainer, pl_module)  # kind eps-dominates (callbacks/_optimizer_eps.py)
            self._idle_judge(trainer, pl_module)

    def _conclude_norms(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self._flags.active or self.layers is None:
            return
        self._probe.disarm()
        self._meter.release()
        if not (self._flags.sharded and self._flags.crashed):  # after a crash other ranks may not reach a collective
            self._meter.weigh_last_row()
            self._flush(trainer, log=False)
        if not trainer.is_global_zero or not self._history.grad:
            for check in self.active_checks:
                if trainer.is_global_zero:
                    self.skip(trainer, check, "no optimizer step was taken")
            return
        grad_sq = torch.cat(self._history.grad)
        weight_sq = self._history.filled(torch.cat(self._history.weight))  # from each layer's first reading
        present = torch.cat(self._history.present)
        steps = int(self._history.counts.observed.max())
        self._conclude_dead(trainer, steps)
        vanishing = self._conclude_vanishing(trainer, grad_sq, weight_sq, present)
        self._judge_early_spike(trainer, grad_sq.sum(1).sqrt())
        self._conclude_growth(trainer, grad_sq)
        self._conclude_weights(trainer, weight_sq, present)
        self._conclude_updates(trainer, exclude=vanishing)
        global_norms = grad_sq.sum(1).sqrt()
        self.detail(trainer, "exploding-gradient",
                    f"global grad norm median {N.median_finite(global_norms):.3g}, max {finite_max(global_norms):.3g}")
        died = N.dead_layers(self._history.counts)["died"] if "dead-gradient" in self.active_checks else []
        since = self._history.counts.dead_since
        self.detail(trainer, "dead-gradient", f"{len(self.layers)} layers over {steps} steps" + (
            f"; {short_list([self.layers.names[i] for i in died])} dead from step {int(since[died, 0].min())}"
            if died and since is not None and bool((since[died, 0] >= 0).all()) else ""))

    def _report(self, trainer, check, severity, message, advice, where, meta, data) -> None:
        step, epoch, batch_idx = meta if meta is not None else (None, None, None)
        finding = self.report(trainer, check, severity, message, advice, where=where, data=data,
                              batch_idx=batch_idx, global_step=step, key=f"{check}:{data.get('kind', '')}")
        if epoch is not None and finding.global_step == step:
            finding.epoch = epoch

    def _fail(self, trainer: "pl.Trainer", err: BaseException) -> None:
        self._flags.active = False
        self._probe.disarm()
        self._meter.release()
        log.warning("lightning_sanity: NormMonitor stopped after an internal error: %r", err)
        for check in self.active_checks:
            self.skip(trainer, check, f"internal error: {err!r}")

r"""
BatchNorm variance monitor
^^^^^^^^^^^^^^^^^^^^^^^^^^

Watch every BatchNorm layer's running variance for blow-ups, bad-luck batches and collapse.

The per-layer state and a step's figures are in ``_batchnorm_state``, the judgement in
:mod:`lightning_sanity.checks.batchnorm`, the findings' words in :mod:`lightning_sanity.checks.batchnorm_findings`,
the scalars in ``_batchnorm_charts``.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from torch import Tensor, nn
from typing_extensions import override

from lightning_sanity.cadence import trainer_chart_every
from lightning_sanity.callbacks._batchnorm_batch import MicroBatchWatch, report_small_batches
from lightning_sanity.callbacks._batchnorm_momentum import MomentumWatch
from lightning_sanity.callbacks._batchnorm_charts import add_batchnorm_layout, log_batchnorm_scalars
from lightning_sanity.callbacks._batchnorm_state import LayerState, StepFigures, Tally
from lightning_sanity.callbacks.step import (
    StepCapture,
    capture_for,
    capture_step,
    request_values,
    resolve_step_reads,
    save_step_bundle,
    step_values,
    values_pending,
)
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.checks import batchnorm as bn
from lightning_sanity.checks.batchnorm_findings import batchnorm_finding, json_number

log = logging.getLogger(__name__)

CHECK = "batchnorm-variance"
_REQUEST = CHECK
#: At most this many bundles per fit from this check: the first occurrences are the ones worth replaying.
MAX_BUNDLES = 3


class BatchNormMonitor(SanityCallback):
    r"""Watch the running variance of every BatchNorm layer (1d/2d/3d, SyncBatchNorm, lazy variants).

    Each step, for every layer that keeps running statistics, it reduces the running variance to its channel mean
    and max (two fused reductions for all layers, on the device), before and after the step's forward pass. The
    batch's own variance follows exactly from the running-variance update (``running = (1 - m) running + m batch``),
    so no forward hook and no extra pass over the activations is needed. The verdict stays on the device and is
    read in the ``non-finite`` sentinel's one host sync of the step (or in this callback's own, when the
    sentinel is absent). A layer is judged only after its warm-up (the initial 1.0 weighs less than 1% of the
    estimate: 44 steps at momentum 0.1), and it fires when:

    - the running variance (channel mean) grows 100x or more within one step (``jump``), or 1000x or more within
      25 steps (``window``);
    - the batch's channel-mean variance is 100x or more the running estimate before it (``batch``: a bad-luck batch);
    - the channel-mean running variance collapses 1000x below its peak and under 100x the layer's ``eps``
      (``collapse``);
    - the running statistics become NaN or Inf (``non-finite``: an error);
    - a layer in train mode normalises training batches of only 2 to 4 samples (``small-batches``: read once, on
      the first batch, from its input's shape; micro-batches under gradient accumulation, see
      :mod:`lightning_sanity.checks.batchnorm_batch`);
    - a layer's momentum is above 0.5 and its running variance moves by a median 1% or more per step: the
      statistics follow single batches (``momentum``, Keras' 0.99 copied literally; judged once, at the first
      epoch end with 10 measured steps, see :mod:`lightning_sanity.checks.batchnorm_momentum`).

    Ratios are taken against at least 10x the layer's ``eps``, so channels whose input is constant (zero variance,
    as for the blank border pixels of digit images) never produce huge ratios from tiny numbers. The finding names
    the layer, epoch, batch and seed, and the step is saved in a replay bundle (the first three times).

    TensorBoard tags, written every ``cadence.chart_every`` steps (the Trainer's ``log_every_n_steps`` fitted to
    the planned run), one line per layer named as in ``named_modules()``:

    - ``sanity/bn_running_var_mean/<layer>``: channel mean of the running variance.
    - ``sanity/bn_running_var_max/<layer>``: channel max of the running variance.
    - ``sanity/bn_batch_ratio/<layer>``: the batch's channel-mean variance over the running estimate before it.

    A custom-scalars chart for each (section ``sanity: batchnorm``).

    Args:
        batchnorm_scalars: write the TensorBoard scalars above (one host sync per logging step).

    Raises:
        ValueError: ``batchnorm_scalars`` is not a bool.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.batchnorm import BatchNormMonitor
        >>> trainer = Trainer(callbacks=[BatchNormMonitor(batchnorm_scalars=False)], logger=False)
    """

    checks = (CHECK,)
    threshold_specs = {CHECK: {
        "jump": Threshold(bn.JUMP_STEP, "growth of a layer's running variance (channel mean) within one step"),
        "window": Threshold(bn.JUMP_WINDOW, f"growth of the running variance within {bn.WINDOW} steps"),
        "batch_ratio": Threshold(bn.BATCH_RATIO, "a batch's variance over the running estimate before it"),
        "collapse": Threshold(bn.COLLAPSE_DROP, "fall of the running variance below its peak (and under 100x eps)"),
    }}

    def __init__(self, batchnorm_scalars: bool = True) -> None:
        if not isinstance(batchnorm_scalars, bool):
            raise ValueError(f"`batchnorm_scalars` must be True or False, got {batchnorm_scalars!r}.")
        self.batchnorm_scalars = batchnorm_scalars
        self._log_dir: Optional[str] = None
        self._reset()

    def _reset(self) -> None:
        self.__dict__.pop("_limits", None)  # thresholds may have been tuned since the last fit
        self._state: Optional[LayerState] = None
        self._layers: list[tuple[str, nn.Module]] = []
        self._verdict: Optional[dict[str, list]] = None
        self._figures: Optional[dict[str, list]] = None
        self._tensors: tuple[list[Tensor], list[Tensor]] = ([], [])
        self._step: Optional[StepFigures] = None
        self._broken = False
        self._tally = Tally()
        self._chart_every = 1  # steps between two logged points (lightning_sanity.cadence)
        self._momentum: Optional[MomentumWatch] = None  # layers with a single-batch momentum
        self._micro: Optional[MicroBatchWatch] = None  # samples per batch seen by each layer, on the first batch

    # ------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage != "fit":
            return
        self._log_dir = trainer.log_dir  # a collective under DDP: read where every rank is
        self._reset()
        self.revive()
        self._layers = bn.batchnorm_layers(pl_module)
        if not self._layers:
            self.skip(trainer, CHECK, "no BatchNorm layer with running statistics in the model")
            self.retire("on_train_batch_start", "on_before_optimizer_step", "on_train_batch_end")  # no step cost

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._chart_every = trainer_chart_every(trainer)
        if self._layers and self.batchnorm_scalars:
            add_batchnorm_layout(trainer)

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        self._step = None
        if not self._active:
            return
        try:
            if self._micro is None:
                self._micro = MicroBatchWatch(self._layers)
                self._micro.start()
            capture = capture_step(trainer, pl_module, batch, batch_idx, holder=self)
            # Reduced when the non-finite sentinel reads its flag (the forward pass has run by then) and read
            # in the same host sync.
            request_values(trainer, _REQUEST, functools.partial(self._device_figures, trainer, capture))
        except Exception as err:
            self._failed(trainer, err)

    @override
    def on_before_optimizer_step(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", optimizer: Any) -> None:
        # The weights have not been updated yet: the best moment for a bundle.
        if self._active and self._step is None:
            self._decide(trainer, pl_module, step_values(trainer, _REQUEST))

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._micro is not None and not self._micro.done:
            try:
                report_small_batches(self, trainer, CHECK, self._micro.stop())
            except Exception as err:
                self._failed(trainer, err)
        if not self._active:
            capture_for(trainer).done(self)
            return
        try:
            if self._step is None:
                values = step_values(trainer, _REQUEST)
                if values is None and values_pending(trainer, _REQUEST):
                    resolve_step_reads(trainer)  # nobody read them this step: this callback's own sync
                    values = step_values(trainer, _REQUEST)
                self._decide(trainer, pl_module, values)
            self._log(trainer)
        except Exception as err:
            self._failed(trainer, err)
        finally:
            self._step = None  # holds references to this step's tensors
            capture_for(trainer).done(self)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._momentum is not None and self._momentum.ready():
            self._judge_momentum(trainer)

    def _judge_momentum(self, trainer: "pl.Trainer") -> None:
        try:
            found = self._momentum.finding(self._state)
            if found is not None:
                severity, message, advice, where, data = found
                self.report(trainer, CHECK, severity, message, advice, where=where, data=data, at_step=False,
                            key="momentum")
        except Exception as err:  # the momentum half must not switch off the rest of the check
            log.warning("lightning_sanity: the batchnorm momentum judgement failed: %r", err)

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._micro is not None and not self._micro.done:
            self._micro.stop()  # the fit ended inside its first batch: leave no hook on the user's model
        if self._momentum is not None and not self._momentum.done and self._state is not None:
            self._judge_momentum(trainer)  # a run shorter than an epoch's worth of measured steps
        if self._layers:
            self.detail(trainer, CHECK,
                        f"{len(self._layers)} BatchNorm layers, {self._tally.steps_judged} steps judged")

    # ------------------------------------------------------------------ the check

    @property
    def _active(self) -> bool:
        return bool(self._layers) and not self._broken

    def _failed(self, trainer: "pl.Trainer", err: BaseException) -> None:
        log.warning("lightning_sanity: the batchnorm-variance check failed and is switched off: %r", err)
        self.skip(trainer, CHECK, f"internal error: {err!r}")
        self._broken = True
        if self._micro is not None and not self._micro.done:
            self._micro.stop()  # leave no hook on the user's model

    def _ensure_state(self) -> Optional[LayerState]:
        if self._state is None:
            if any(isinstance(m.running_var, nn.parameter.UninitializedBuffer) for _, m in self._layers):
                return None  # lazy layers not materialized yet (first forward)
            self._state = LayerState(self._layers)
        return self._state

    def _device_figures(self, trainer: "pl.Trainer", capture: StepCapture) -> Optional[list[Tensor]]:
        """After the forward pass: the running variances before and after it, reduced on the device."""
        try:
            state = self._ensure_state()
            if self._broken or state is None or capture.bn_names != state.buffer_names:
                return None  # a layer materialized during this step: judge from the next one
            before, live = capture.bn_copies, capture.bn_sources
            # Buffers and their copies: nothing here requires a gradient, so no autograd mode to switch.
            sums = torch._foreach_norm(before[1::3] + live[1::3], 1, dtype=torch.float32)  # variances are >= 0
            figures = [torch.stack(sums), torch.stack(before[2::3] + live[2::3])]
            self._tensors = (before, live)
            return figures
        except Exception as err:
            self._failed(trainer, err)
            return None

    def _decide(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", values: Optional[list[float]]) -> None:
        """Judge the step from its figures on the host: the screen after warm-up, the full verdict when it flags."""
        state = self._state
        if values is None or state is None or self._broken:
            return
        try:
            step = self._step = StepFigures(state, values, *self._tensors)
            if self._momentum is None:
                self._momentum = MomentumWatch(state)
            self._momentum.observe(state, step)
            self._tally.steps_judged += 1
            limits = self._limits
            slot = state.calls % bn.WINDOW
            if state.calls == 0:
                state.ring = [list(step.mean_after) for _ in state.ring]
            warming = state.calls < state.screened_from
            # During warm-up the screen also needs the floor of the earlier batches' reference (the warm-up form
            # of the bad-batch test); afterwards those batches are no longer kept.
            low = bn.reference_low(state.batches) if warming else None
            if not bn.screen(step.mean_before, step.mean_after, state.ring[slot], state.peak, state.armed,
                             state.floor, step.momentum, state.collapse_level, reference_low=low, **limits):
                # Quiet (every value finite): move on as the full verdict would when it stays silent.
                if warming:
                    state.quiet_warmup_step(step, slot)
                else:
                    state.ring[slot] = step.mean_after
                    state.peak = list(map(max, step.mean_after, state.peak))  # all finite: the screen passed
                state.calls += 1
                return
            alarm = self._verdict_of(step, slot, limits)
            state.calls += 1
            if alarm:
                self._handle(trainer, pl_module)
        except Exception as err:
            self._failed(trainer, err)

    @functools.cached_property
    def _limits(self) -> dict[str, float]:
        return {"jump_step": self.threshold(CHECK, "jump"), "jump_window": self.threshold(CHECK, "window"),
                "batch_ratio_limit": self.threshold(CHECK, "batch_ratio"),
                "collapse_drop": self.threshold(CHECK, "collapse")}

    def _verdict_of(self, step: StepFigures, slot: int, limits: dict[str, float]) -> bool:
        """The full verdict of ``step`` (CPU tensors); updates the state exactly; True when a layer fires."""
        state = self._state
        t = lambda values: torch.tensor(values, dtype=torch.float64)  # noqa: E731
        mean_after, window_ref, peak = t(step.mean_after), t(state.ring[slot]), t(state.peak)
        tracked_after, delta, warmup = t(step.tracked_after), t(step.delta), t(state.warmup)
        reference, reference_count = bn.batch_reference(t(state.batches))
        out = bn.judge(t(step.mean_before), mean_after, window_ref, peak,
                       t(state.momentum), tracked_after, delta, warmup, t(state.eps), reference, reference_count,
                       **limits)
        updated = delta >= 1
        exact = (delta == 1) & torch.isfinite(out["batch_variance"])
        # Every exact batch goes in, a bad one too: the quantile shrugs it off, and a lasting change of
        # scale becomes the new reference instead of firing forever.
        row = state.calls % bn.REFERENCE_BATCHES
        state.batches[row] = torch.where(exact, out["batch_variance"], t(state.batches[row])).tolist()
        state.ring[slot] = torch.where(updated, mean_after, window_ref).tolist()
        warm = updated & (tracked_after >= warmup) & torch.isfinite(mean_after)
        state.peak = torch.where(warm, torch.maximum(peak, mean_after), peak).tolist()
        # Collapse and non-finite statistics persist: fire once per layer.
        lasting = out["fired_collapse"] | out["fired_nonfinite"]
        armed = torch.tensor(state.armed)
        alarm = out["alarm"] & (armed | ~lasting)
        state.armed = (armed & ~lasting).tolist()
        self._verdict = {**{k: v.tolist() for k, v in out.items()}, "alarm": alarm.tolist()}
        self._figures = {"mean_before": step.mean_before, "mean_after": step.mean_after,
                         "window_ref": window_ref.tolist(), "peak": list(state.peak), "reference": reference.tolist()}
        return bool(alarm.any())

    def _handle(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        verdict, figures, state = self._verdict, self._figures, self._state
        if verdict is None or figures is None or state is None:
            return
        host = {**verdict, **figures}
        host["max_after"] = self._step.max_after() if self._step is not None else [math.nan] * len(state.names)
        capture = capture_for(trainer)
        replay = None
        for i, name in enumerate(state.names):
            if not host["alarm"][i]:
                continue
            kind = next(k for k in ("nonfinite", "jump", "window", "batch", "collapse") if host[f"fired_{k}"][i])
            if replay is None and self._tally.bundles < MAX_BUNDLES:
                extra: dict[str, Any] = {"criterion": kind}
                if kind == "batch" and host["fired_batch_early"][i]:
                    # Judged against the upper quartile of earlier batches, which the bundle cannot rebuild on its own.
                    extra["reference_variance"] = json_number(host["reference"][i])
                replay = save_step_bundle(trainer, pl_module, self._log_dir, check=CHECK, where=name, kind=kind,
                                          extra=extra)
                self._tally.bundles += replay is not None
            self._report(trainer, name, kind, i, host, capture, replay)
            if kind in ("jump", "window", "batch"):
                # Start the window afresh at the new level, so one blow-up is reported once.
                for row in state.ring:
                    row[i] = host["mean_after"][i]

    def _report(self, trainer: "pl.Trainer", name: str, kind: str, i: int, host: dict[str, list], capture: Any,
                replay: Optional[str]) -> None:
        thresholds = {t: self.threshold(CHECK, t) for t in ("jump", "window", "batch_ratio", "collapse")}
        severity, message, advice, data = batchnorm_finding(name, kind, i, host, capture, self._state.modules[i],
                                                            int(trainer.global_rank), thresholds)
        self.report(trainer, CHECK, severity, message, advice, where=name, data=data, batch_idx=capture.batch_idx,
                    global_step=capture.global_step, replay=replay, key=kind)

    def _log(self, trainer: "pl.Trainer") -> None:
        step, state = self._step, self._state
        logging_step = trainer.global_step
        if (not self.batchnorm_scalars or step is None or state is None or logging_step == self._tally.last_logged_step
                or logging_step % max(1, self._chart_every) != 0 or not trainer.is_global_zero
                or not trainer.loggers):
            return
        self._tally.last_logged_step = logging_step
        log_batchnorm_scalars(trainer, state, step, logging_step)

r"""
Loss and learning-rate dynamics
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

Judge the training loss history (``loss-trend``) and each param group's learning rate (``lr-schedule``) against
the planned length of the run, once, at the end of fit or at the crash.

The losses are measured by ``_loss_history``, the run's length by ``_run_length``; the judgements are
:mod:`lightning_sanity.checks.loss_trend`, :mod:`lightning_sanity.checks.lr_history` and
:mod:`lightning_sanity.checks.schedule`.
"""

from __future__ import annotations

from typing import Any, Optional

import lightning.pytorch as pl
import torch
from typing_extensions import override

from lightning_sanity.callbacks._loss_history import LossHistory
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.callbacks._run_length import RunProgress, batches_before_fit, planned_batches
from lightning_sanity.callbacks._scheduler_watch import SchedulerWatch
from lightning_sanity.checks import loss_trend, lr_history, schedule
from lightning_sanity.checks.loss_oscillation import samples_per_batch
from lightning_sanity.callbacks._dropout_noise import dropout_noise_verdict
from lightning_sanity.callbacks._moving_targets import frozen_fingerprint, moving_target
from lightning_sanity.checks.outputs import loss_kind_is
from lightning_sanity.checks.verdict import Verdict
from lightning_sanity.checks.schedule import LrTrajectory
from lightning_sanity.checks.slow_updates import loss_end
from lightning_sanity.checks.loss_baseline import finite_or_none, trend_baseline, trend_words

#: with no planned length (infinite or iterable data), judge only after this many batches.
_UNPLANNED_MIN_BATCHES = 500


class LossDynamics(SanityCallback):
    r"""Judge the training loss and the learning-rate schedule over the whole run.

    **loss-trend** reads the loss Lightning hands to ``on_train_batch_end`` (multiplied back by
    ``accumulate_grad_batches``; with manual optimization whatever ``training_step`` returned, skipped if it
    returned nothing). Losses stay on the device and reach the host in chunks of 256 batches. At the end of fit
    (or the crash) the history is judged: rising steadily, negative for a loss that cannot be, exploded early,
    flat from the start, oscillating strongly (on means over whole optimizer updates holding enough effective
    samples), or never clearly below the input-independent baseline (the label prior's entropy over the labels
    the data checks counted, else the ``initial-loss`` figure, at most ln C); a run seen whole that ends at that
    baseline is an error. Nothing is judged before
    ``loss_trend_min_progress`` of the planned training was seen (a run that ends normally counts as complete).

    **lr-schedule** reads ``trainer.optimizers[i].param_groups[j]["lr"]`` (host floats) at every batch start and,
    with the schedulers' configuration (``trainer.lr_scheduler_configs``), warns when a group's rate falls below
    ``collapse_ratio`` x the largest rate it had before ``collapse_before`` of the planned training and stays
    there; falls and restarts with a period far shorter than the run; warms up for longer than the planned run;
    or is 0 all run while the group's parameters are trainable (see :mod:`lightning_sanity.checks.schedule`); and
    when a ReduceLROnPlateau's mode contradicts its metric's name, or a scheduler is never stepped under manual
    optimization (:mod:`lightning_sanity.checks.scheduler_use`).
    Warmup from 0, cosine and linear decay to the end, one-cycle, warm restarts and SWA stay silent.

    Only global rank 0 judges; this callback writes no TensorBoard charts.

    Thresholds (``thresholds={...}`` or :meth:`set_thresholds`): ``loss-trend``: ``rise_factor`` (rising: the end
    at least this many times the start), ``flat_margin`` (flat: the end within this fraction of the start),
    ``baseline_margin`` (the end must get this fraction below the input-independent baseline to beat it);
    ``lr-schedule``: ``collapse_ratio`` (a rate below this fraction of its peak has collapsed) and
    ``collapse_before`` (a collapse that starts before this fraction of the planned training is reported).

    Args:
        loss_trend_min_progress: fraction of the planned training (0-1) that must be seen before the loss is
            judged at a crash: when there is enough to judge, not what is judged bad, so an option, not a
            threshold.

    Raises:
        ValueError: ``loss_trend_min_progress`` outside (0, 1].

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.loss_dynamics import LossDynamics
        >>> dynamics = LossDynamics().set_thresholds({"lr-schedule": {"collapse_ratio": 1e-3}})
        >>> trainer = Trainer(callbacks=[dynamics], logger=False)
    """

    checks = ("loss-trend", "lr-schedule")
    threshold_specs = {
        "loss-trend": {
            "rise_factor": Threshold(
                loss_trend.RISE_FACTOR, "a steadily rising loss fires when its end is at least this many times its "
                "start", minimum=1.0),
            "flat_margin": Threshold(
                loss_trend.FLAT_MARGIN, "a loss whose end is within this fraction of its start (at or above the "
                "baseline) is flat", maximum=1.0),
            "baseline_margin": Threshold(
                loss_trend.BASELINE_MARGIN, "the loss must end at least this fraction below the input-independent "
                "baseline to count as beating it", maximum=1.0),
        },
        "lr-schedule": {
            "collapse_ratio": Threshold(
                lr_history.LR_COLLAPSE_RATIO, "a learning rate below this fraction of its group's peak has collapsed",
                maximum=1.0),
            "collapse_before": Threshold(
                lr_history.LR_COLLAPSE_BEFORE, "a collapse that starts before this fraction of the planned training "
                "is reported", maximum=1.0),
        },
    }

    def __init__(self, loss_trend_min_progress: float = 0.25) -> None:
        value = loss_trend_min_progress
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
            raise ValueError(f"`loss_trend_min_progress` must be a number in (0, 1], got {value!r}.")
        self.loss_trend_min_progress = float(loss_trend_min_progress)
        self._reset()

    def _reset(self) -> None:
        self._loss = LossHistory()
        self._run = RunProgress()
        self._no_loss_reason: Optional[str] = None
        self._lr: dict[tuple[int, int], LrTrajectory] = {}
        self._lr_unreadable: Optional[str] = None
        # (trainer.optimizers, their group counts, [(i, j, optimizer, group)]): the groups read at each batch start
        self._lr_groups: Optional[tuple] = None
        self._lr_last: dict[tuple[int, int], Any] = {}  # the last rate of each group in its history
        self._broken: dict[str, str] = {}
        self._schedulers = SchedulerWatch()
        self._frozen_start: Optional[torch.Tensor] = None  # frozen parameters at train start (a moving target)

    # ------------------------------------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self._reset()

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        try:
            self._run.planned = planned_batches(trainer)
            self._run.before = batches_before_fit(trainer)
        except Exception as err:  # never lose the run over a counter
            self._run.planned, self._run.before = None, 0
            self._broken.setdefault("loss-trend", f"could not read the planned length: {err!r}")
        try:
            self._frozen_start = frozen_fingerprint(pl_module) if self.is_enabled("loss-trend") else None
        except Exception:  # an unusual parameter: the target is then taken as fixed
            self._frozen_start = None
        if self.is_enabled("lr-schedule"):
            try:
                self._schedulers.start(trainer)
            except Exception:  # an unusual scheduler: judge from the rates alone
                self._schedulers = SchedulerWatch()

    @override
    def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._sample_schedulers(trainer)

    def _sample_schedulers(self, trainer: "pl.Trainer") -> None:
        try:
            self._schedulers.sample(trainer)
        except Exception:  # never lose the run over a diagnostic
            self._schedulers.plateaus = []

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                             batch_idx: int) -> None:
        # Step-interval schedulers have already moved by on_train_batch_end: read the rate this step uses here.
        if not self.is_enabled("lr-schedule") or self._lr_unreadable:
            return
        try:
            optimizers = trainer.optimizers
            if self._lr_groups is None or self._lr_groups[0] is not optimizers or self._lr_groups[1] != [
                    len(o.param_groups) for o in optimizers]:
                groups = [(i, j, optimizer, group) for i, optimizer in enumerate(optimizers)
                          for j, group in enumerate(optimizer.param_groups)]
                self._lr_groups = (optimizers, [len(o.param_groups) for o in optimizers], groups)
            for i, j, optimizer, group in self._lr_groups[2]:
                lr = group.get("lr")
                if type(lr) is float and lr == self._lr_last.get((i, j)):
                    continue  # the same rate again changes nothing in the history (the common case: one look)
                if isinstance(lr, torch.Tensor):
                    if lr.device.type != "cpu":  # reading it would sync with the device every step
                        self._lr_unreadable = "the learning rate is a device tensor (reading it would sync)"
                        return
                    lr = float(lr)
                if not isinstance(lr, (int, float)):
                    continue
                history = self._lr.get((i, j))
                if history is None:
                    where = f"param group {j} of optimizer {i} ({type(optimizer).__name__})"
                    history = self._lr[(i, j)] = LrTrajectory(
                        where, ratio=self.threshold("lr-schedule", "collapse_ratio"))
                if lr != history.last:  # the same rate again changes nothing in the history
                    history.update(float(lr), step=trainer.global_step, progress=self._run.fraction(),
                                   batch=self._run.before + self._run.seen)
                self._lr_last[(i, j)] = history.last
        except Exception as err:  # never lose the run over a diagnostic
            self._lr_unreadable = f"could not read the learning rates: {err!r}"

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._run.seen += 1
        if not self.is_enabled("loss-trend"):
            return
        try:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                if self._no_loss_reason is None:
                    self._no_loss_reason = "training_step returned no scalar loss to follow"
                return
            scale = trainer.accumulate_grad_batches if pl_module.automatic_optimization else 1
            self._loss.add(loss, scale)
            if self._loss.elements is None:
                self._loss.describe(batch, scale)
        except Exception as err:  # never lose the run over a diagnostic
            self._broken.setdefault("loss-trend", f"could not read the loss: {err!r}")

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._schedulers.epochs += 1
        self._loss.flush()

    @override
    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # Not called when fit raised: this is how the judgement knows the whole run was seen.
        self._run.ended_normally = True

    # ------------------------------------------------------------------------------------------------ judgement

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._loss.flush()
        if not trainer.is_global_zero:
            return
        if self.is_enabled("loss-trend"):
            self._conclude_loss(trainer, pl_module)
        if self.is_enabled("lr-schedule"):
            self._conclude_lr(trainer)

    def _conclude_loss(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if "loss-trend" in self._broken:
            self.skip(trainer, "loss-trend", self._broken["loss-trend"])
            return
        if not pl_module.automatic_optimization and len(trainer.optimizers) > 1:
            # Adversarial or multi-objective training: the returned loss is not one objective to minimise.
            self.skip(trainer, "loss-trend", "manual optimization with several optimizers: no single loss to judge")
            return
        values = self._loss.values()
        if not values:
            self.skip(trainer, "loss-trend", self._no_loss_reason or "no training loss was seen")
            return
        total = self._loss.finite + self._loss.nonfinite
        if self._loss.nonfinite > 0.1 * total:
            self.skip(trainer, "loss-trend",
                      f"{self._loss.nonfinite} of {total} losses were non-finite; see the non-finite check")
            return
        progress = self._run.fraction()
        if progress is None and self._run.seen < _UNPLANNED_MIN_BATCHES and not self._run.ended_normally:
            self.skip(trainer, "loss-trend",
                      f"too little to judge: {self._run.seen} batches seen, planned length unknown")
            return
        facts = self.collector(trainer).facts
        baseline, baseline_how = trend_baseline(facts)
        # A run that ended on its own (max_epochs, max_steps, early stopping) was seen whole.
        judged_progress = 1.0 if self._run.ended_normally else progress
        start = finite_or_none(facts.get("initial_loss"))
        if baseline is not None and baseline <= 1e-6 * abs(start if start is not None else values[0]):
            # A constant prediction is already perfect (constant targets, label-distribution's finding): no loss
            # can end below it, so it tells nothing about learning.
            baseline, baseline_how = None, ""
        verdict, reason = loss_trend.judge_loss_trend(
            values,
            start=start,
            batches_per_value=self._loss.block,
            batches_per_update=self._loss.per_update,
            samples_per_batch=samples_per_batch(facts, facts.get("loss_elements") or self._loss.elements),
            progress=judged_progress,
            seen=self._run.words(),
            baseline=baseline,
            # Only a loss made of recognised non-negative calls alone cannot go negative: terms of its own (a learned
            # uncertainty weight `exp(-s) * L + s`, a learned log-variance) or a Gaussian NLL call can.
            nonnegative=(loss_kind_is(facts.get("loss_kind"), "nonnegative")
                         and facts.get("loss_can_go_negative") is not True),
            log_probability=facts.get("loss_is_log_probability") is True,
            min_progress=self.loss_trend_min_progress,
            val_losses=[v for v in (facts.get("val_loss_before_training"),) if v is not None] + list(
                facts.get("val_losses") or ()),
            **{name: self.threshold("loss-trend", name) for name in ("rise_factor", "flat_margin", "baseline_margin")},
        )
        if reason is not None:
            self.skip(trainer, "loss-trend", reason)
            return
        if verdict is None and judged_progress is not None and judged_progress >= 1.0:
            verdict = dropout_noise_verdict(pl_module, values, facts, baseline)
            if verdict is None:  # no fault in the curve: update-ratio asks whether it got anywhere (slow_updates)
                facts["loss_end_unjudged"] = loss_end(values, baseline)
        # A sign flip or an exactly constant loss is a fault whatever the target.
        if verdict is not None and verdict.kind != "negative" and not verdict.data.get("constant"):
            self._defer_moving_target(verdict, facts, pl_module)
        if verdict is not None:
            self._report(trainer, "loss-trend", verdict)
        words = trend_words(values, start, baseline, baseline_how)
        self.detail(trainer, "loss-trend", f"{words}; {self._run.words()}")

    def _defer_moving_target(self, verdict: Verdict, facts: dict, pl_module: "pl.LightningModule") -> None:
        """A target that moves with training (bootstrapped, an EMA teacher): the starting level and the first
        batch's baseline do not describe later steps, so a verdict judged against them is only information."""
        try:
            why = moving_target(facts, self._frozen_start, pl_module)
        except Exception:  # an unusual parameter: the verdict stands
            why = None
        if why is None:
            return
        verdict.severity = "info"
        verdict.data["moving_target"] = True
        verdict.message += (f" Not judged as a fault: {why}, so the target is not a fixed function of the batch and "
                            "its scale moves as the model learns; the first losses and the first batch's "
                            "constant-prediction baseline do not describe later steps.")

    def _conclude_lr(self, trainer: "pl.Trainer") -> None:
        if self._lr_unreadable:
            self.skip(trainer, "lr-schedule", self._lr_unreadable)
            return
        if not self._lr:
            self.skip(trainer, "lr-schedule", "no learning rate was seen")
            return
        if self._run.planned is None:
            self.skip(trainer, "lr-schedule", "planned length unknown: cannot tell early from late")
            return
        lowest = min(self._lr.values(), key=lambda h: (h.last or 0.0) / h.max_lr if h.max_lr > 0 else 1.0)
        facts = self._scheduler_facts(trainer)
        self._sample_schedulers(trainer)
        try:
            misused = self._schedulers.verdicts(trainer, self._lr, self._run.seen)
        except Exception:  # an unusual scheduler: judge from the rates alone
            misused = []
        for i, verdict in misused:
            self._report(trainer, "lr-schedule", verdict, where=f"optimizers[{i}]")
        # A plateau scheduler in the wrong mode is the cause of its rate's collapse: one finding, not two.
        inverted = {i for i, v in misused if v.kind == "plateau-mode" and v.severity == "warning"}
        # StochasticWeightAveraging anneals the rate to its own swa_lrs, up or down, by design.
        swa = any(f["name"] in schedule.SWA_NAMES for f in facts) or any(
            type(c).__name__ == "StochasticWeightAveraging" for c in trainer.callbacks)
        seen = self._run.before + self._run.seen
        complete = seen >= schedule.WARMUP_SEEN * self._run.planned
        epoch = trainer.num_training_batches
        epoch = float(epoch) if isinstance(epoch, (int, float)) else None
        for (i, j), history in self._lr.items():
            where = f"optimizers[{i}].param_groups[{j}]"
            mine = [f for f in facts if f["optimizer"] == i]
            if history.max_lr == 0 and history.last is not None:
                self._judge_zero_group(trainer, i, j, history, where)
                continue
            verdicts = []
            if not swa:
                verdicts.append(schedule.judge_repeated(history, facts=mine, planned=self._run.planned,
                                                        batches_per_epoch=epoch, seen=self._run.words()))
                base = next((f["base_lrs"][j] for f in mine if len(f.get("base_lrs", ())) > j), None)
                if not schedule.caught_up(history, [h for (k, _), h in self._lr.items() if k == i], seen):
                    verdicts.append(schedule.judge_warmup(history, facts=mine, planned=self._run.planned, seen=seen,
                                                          complete=complete, seen_words=self._run.words(),
                                                          base_lr=base))
            if not history.restarts and i not in inverted:
                verdicts.append(history.judge(seen=self._run.words(),
                                              before=self.threshold("lr-schedule", "collapse_before")))
            for verdict in filter(None, verdicts):
                self._report(trainer, "lr-schedule", verdict, where=where)
        if lowest.max_lr > 0 and lowest.last is not None:
            self.detail(trainer, "lr-schedule", f"lowest lr at the end: {lowest.last / lowest.max_lr:.2g}x its peak")

    def _scheduler_facts(self, trainer: "pl.Trainer") -> list:
        try:
            epoch = trainer.num_training_batches
            automatic = trainer.lightning_module.automatic_optimization
            accumulate = trainer.accumulate_grad_batches if automatic else 1
            return schedule.scheduler_facts(list(trainer.lr_scheduler_configs), list(trainer.optimizers),
                                            float(epoch) if isinstance(epoch, (int, float)) else None, accumulate,
                                            manual=not automatic)
        except Exception:  # an unusual scheduler: judge from the trajectory alone
            return []

    def _judge_zero_group(self, trainer: "pl.Trainer", i: int, j: int, history: LrTrajectory, where: str) -> None:
        try:
            group = trainer.optimizers[i].param_groups[j]
        except (IndexError, AttributeError):
            return
        names = {id(p): n for n, p in trainer.lightning_module.named_parameters()}
        trainable = [p for p in group.get("params", []) if getattr(p, "requires_grad", False)]
        if not trainable:
            return  # frozen on purpose: lr 0 and requires_grad=False
        verdict = schedule.zero_group_verdict(history.where, [names.get(id(p), "?") for p in trainable],
                                              len(trainable))
        self._report(trainer, "lr-schedule", verdict, where=where)

    def _report(self, trainer: "pl.Trainer", check: str, verdict: Verdict, where: Optional[str] = None) -> None:
        # A loss that cannot be negative going below zero is a flipped sign, and a run that ends at the prior
        # learned nothing: training is certainly broken (the verdict says so).
        severity = "error" if verdict.kind == "negative" else verdict.severity
        self.report(trainer, check, severity, verdict.message, verdict.advice, where=where,
                    data={"pattern": verdict.kind, **verdict.data}, at_step=False, key=verdict.kind)

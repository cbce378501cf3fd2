r"""
Prediction dynamics
^^^^^^^^^^^^^^^^^^^

Follow the model's predictions on one fixed batch through training: charts in TensorBoard, a history file, and
the ``prediction-jitter``, ``constant-output`` (during training) and ``train-mode`` (stochastic in eval mode)
judgements.

This module decides when; the rest lives by what it does: measuring in ``_fixed_batch`` (calling the model) and
``_snapshot_history`` (the figures of each snapshot), findings in ``_fixed_batch_findings``, charts in
``_prediction_charts``, judgement in :mod:`lightning_sanity.checks.jitter` and :mod:`lightning_sanity.checks.outputs`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning_sanity.replays.rng import isolate_rng
from typing_extensions import override

from lightning_sanity import cost
from lightning_sanity.batch import batch_size, first_tensor, slice_batch, split_batch
from lightning_sanity.callbacks._constant_output import conclude_constant_output
from lightning_sanity.callbacks._extra_forward import eval_mode
from lightning_sanity.callbacks._fixed_batch import FixedBatch, Unusable, align_to_target, call_model, samples_to_keep
from lightning_sanity.callbacks._fixed_batch_findings import FixedBatchFindings, SnapshotFindings
from lightning_sanity.callbacks._prediction_charts import PredictionCharts, add_prediction_layout
from lightning_sanity.callbacks._snapshot_history import HISTORY_FILE, SnapshotClock, SnapshotHistory
from lightning_sanity.callbacks._snapshot_plan import DEFAULT_SAMPLES, plan_snapshots
from lightning_sanity.callbacks._val_model_gap import evaluate_after_validation
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.checks.jitter import (
    JITTER_CHANGE_THRESHOLD,
    JITTER_FLIP_THRESHOLD,
    judge_jitter,
    jitter_unjudgeable,
)
from lightning_sanity.checks.numerics import is_finite
from lightning_sanity.checks.outputs import as_sequence, output_kind, probabilities

log = logging.getLogger(__name__)

__all__ = ["HISTORY_FILE", "PredictionDynamics"]


class PredictionDynamics(FixedBatchFindings, SanityCallback):
    r"""Evaluate a fixed batch at every epoch end and every N steps, chart how its predictions move, and judge them.

    The fixed batch is chosen once, without extra passes over the user's loaders and without touching the
    global RNG: ``predictions_batch`` when given, else the first batch of the sanity-check validation run, else
    the first training batch. It is cut to ``predictions_batch_size`` samples (automatic: 64, fewer on a short
    run), kept on the CPU and moved to the model's device for each snapshot. A snapshot calls the model the way
    every fixed-batch check does (:mod:`lightning_sanity.forward`: ``forward_fn``, else ``pl_module(input)``,
    ``pl_module(**input)`` or ``pl_module(*batch)``, as ``forward``'s signature accepts) in eval mode under
    ``no_grad`` and inside ``isolate_rng()``, then restores every module's own ``training`` flag; BatchNorm
    statistics are not touched.

    Outputs are read as classification (``(B, C)`` logits, softmax; only with class-index targets in range or a
    cross-entropy loss), binary (``(B,)``/``(B, 1)`` with 0/1 targets and a binary loss, sigmoid), regression
    (any other output, e.g. an autoencoder's reconstruction of a target-less batch) or sequences (``(B, T, C)``, or
    ``(B, C, *S)`` with ``(B, *S)`` integer targets; per-token figures, targets below 0 ignored).

    Checks:

    - ``prediction-jitter`` (warning): late in the run the fixed batch's predictions still change class between
      snapshots for a median 30 % or more of the samples (regression: move by half a target standard deviation),
      and did not settle compared with earlier; judged at the end of fit. Thresholds
      (``thresholds={"prediction-jitter": {...}}`` or :meth:`set_thresholds`): ``flip_fraction`` (0.3) and
      ``change_sd`` (0.5). ``constant-output`` and ``train-mode`` have none.
    - ``constant-output`` (warning): at a snapshot after training started, every sample of the fixed batch gets
      the same output although the inputs differ (or the output's spread across the samples fell below
      ``1/sqrt(B)`` of its first snapshot's: :mod:`lightning_sanity.checks.collapse`), and still does at the last
      snapshot; located where it began.
      ``where`` names the first module whose output stops depending on its input. A collapse that clears later is
      withdrawn to ``info`` with the step it cleared; unconverged BatchNorm statistics are named in the advice.
    - ``train-mode`` (warning): two evaluations of the fixed batch with the same weights in eval mode disagree
      and a dropout op runs with ``training=True`` (functional dropout left at its default, a dropout module
      forced to train). ``where`` names the first module whose output differed while its input did not. When
      the randomness is sampling instead (``randn_like``, ``bernoulli``, ...: a VAE, a diffusion model), info.
    - ``non-finite`` (error, reported, not owned): the fixed-batch predictions hold NaN or Inf.

    TensorBoard (global rank 0, every TensorBoard logger; the step is ``trainer.global_step``):

    - ``sanity/predictions/probabilities`` image: samples (rows) x classes (columns), the current class
      probabilities (viridis: dark = 0, yellow = 1). Binary: samples x labels. Sequences: samples x tokens, each
      token's probability of its target token.
    - ``sanity/predictions/true_class_over_time`` image: samples (rows) x snapshots (columns, first and last step
      named), each sample's probability of its true class (sequences: mean over tokens).
    - ``sanity/predictions/prediction_vs_target`` image (regression): scatter of prediction (up) against target
      (right), coloured by samples per pixel; the grey diagonal is a perfect fit.
    - Every image is a labelled chart of one size (:mod:`lightning_sanity.images`): title, axis names and
      ticks, a colour bar with its range; more than 192 samples or 224 classes/snapshots are thinned or bucketed,
      and the axis label says so.
    - ``sanity/predictions/outputs`` histogram: the raw outputs (logits or values).
    - ``sanity/predictions/true_class_probability`` histogram (classification, binary, sequence) or
      ``sanity/predictions/residuals`` histogram (regression).
    - scalars ``sanity/predictions/loss`` (cross-entropy of the probabilities, binary cross-entropy, or MSE) and
      ``sanity/predictions/accuracy`` (torchmetrics; per token for sequences) on the fixed batch;
      ``sanity/predictions/mean_change`` (classification: mean total-variation distance between the probability
      vectors of consecutive snapshots; regression: mean absolute change in output units) and
      ``sanity/predictions/flip_fraction`` (share of predictions whose class changed since the last snapshot).
      The scalars go to every logger (CSV too); custom-scalars charts group them.

    History: ``<log_dir>/sanity/predictions.npz`` (global rank 0, rewritten at each epoch end and at the end)
    with ``step``, ``epoch``, ``loss``, ``accuracy``, ``mean_change``, ``flip_fraction`` (one value per snapshot),
    ``true_class_probability`` and ``predicted_class`` (snapshots x samples), ``prediction`` (regression:
    snapshots x samples x outputs), ``target``, ``probabilities`` (last snapshot, up to 2^20 values), ``kind`` and
    ``source``.

    Args:
        predictions_batch: a batch (in the structure of the training batches) to follow instead of the default.
        predictions_batch_size: most samples of the fixed batch to keep (1-4096); ``None``: 64, or as many as keep
            the required snapshots within the periodic budget of a short planned run (at least 24).
        predictions_every_n_steps: snapshot every N optimizer steps besides each epoch end; ``None`` picks a
            multiple of the Trainer's ``log_every_n_steps`` (snapshots then ride on logging steps) giving about
            50 snapshots over the planned run (at least every 5 steps), unless that leaves fewer than 20 (a short
            run: then every ``max(5, ceil(planned / 50))`` steps), ``0`` snapshots at epoch ends only.
        forward_fn: ``(pl_module, x) -> output``, how to run the model on the input ``x`` (what ``get_input``
            returns), for models whose forward needs more than the input. Shared with :class:`ModelChecks`.
        get_input: ``batch -> input`` when the input cannot be found in the batch (see ``lightning_sanity.batch``).
        get_target: ``batch -> target`` likewise.

    Raises:
        ValueError: an argument of the wrong type or out of range.

    Cost: per snapshot one forward of the fixed batch (and one of its first eighth on the first three, at epoch
    ends, and every fourth within the periodic budget: eval determinism), one host transfer, the scalars; images
    and histograms within the budget (the latest at the end of fit in any case); nothing on the other steps. 10
    snapshots are taken whatever the budget (what jitter judges), spread over the planned run.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.predictions import PredictionDynamics
        >>> trainer = Trainer(callbacks=[PredictionDynamics(predictions_every_n_steps=100)], logger=False)
    """

    checks = ("prediction-jitter", "constant-output", "train-mode")
    threshold_specs = {
        "prediction-jitter": {
            "flip_fraction": Threshold(
                JITTER_FLIP_THRESHOLD, "late median share of the fixed batch's predictions changing class between "
                "snapshots that fires", maximum=1.0),
            "change_sd": Threshold(
                JITTER_CHANGE_THRESHOLD, "regression: late median change of the predictions between snapshots, in "
                "target standard deviations, that fires"),
        },
    }

    def __init__(
        self,
        predictions_batch: Any = None,
        predictions_batch_size: Optional[int] = None,
        predictions_every_n_steps: Optional[int] = None,
        forward_fn: Optional[Callable[[Any, Any], Any]] = None,
        get_input: Optional[Callable[[Any], Any]] = None,
        get_target: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        if predictions_batch is not None and first_tensor(predictions_batch) is None:
            raise ValueError(
                f"`predictions_batch` must be a batch holding at least one tensor, got {type(predictions_batch).__name__}."
            )
        if predictions_batch_size is not None and (isinstance(predictions_batch_size, bool) or not isinstance(
                predictions_batch_size, int) or not 1 <= predictions_batch_size <= 4096):
            raise ValueError("`predictions_batch_size` must be None (automatic) or an int in [1, 4096], got "
                             f"{predictions_batch_size!r}.")
        if predictions_every_n_steps is not None and (
            isinstance(predictions_every_n_steps, bool)
            or not isinstance(predictions_every_n_steps, int)
            or predictions_every_n_steps < 0
        ):
            raise ValueError(
                "`predictions_every_n_steps` must be None (automatic), 0 (epoch ends only) or a positive int, "
                f"got {predictions_every_n_steps!r}."
            )
        for name, fn in (("forward_fn", forward_fn), ("get_input", get_input),
                         ("get_target", get_target)):
            if fn is not None and not callable(fn):
                raise ValueError(f"`{name}` must be a callable or None, got {fn!r}.")
        self.predictions_batch = predictions_batch
        self.predictions_batch_size = predictions_batch_size
        self.predictions_every_n_steps = predictions_every_n_steps
        self.forward_fn = forward_fn
        self.get_input = get_input
        self.get_target = get_target
        self._reset()

    def _reset(self) -> None:
        self.revive()
        self._fixed = FixedBatch()
        self._clock = SnapshotClock()
        self._history = SnapshotHistory()
        self._found = SnapshotFindings()
        self._charts = PredictionCharts()
        self._log_dir: Optional[str] = None
        self._most = self.predictions_batch_size or DEFAULT_SAMPLES  # samples to follow, set at train start

    # ------------------------------------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage != "fit":
            return
        self._reset()
        # `trainer.log_dir` is a collective under DDP: read it here, where every rank is.
        self._log_dir = trainer.log_dir

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        add_prediction_layout(trainer)

    @override
    def on_validation_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        # The sanity check's first validation batch: held out, usually unshuffled, and already delivered.
        if (trainer.sanity_checking and self._fixed.batch is None and self.predictions_batch is None
                and dataloader_idx == 0):
            self._capture(batch, "validation")

    @override
    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not trainer.sanity_checking and self._fixed.source == "validation" and self._fixed.stopped is None:
            evaluate_after_validation(self, trainer, pl_module, self._fixed.batch)  # val-divergence's model gap

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._most = plan_snapshots(trainer, self._clock, self.predictions_every_n_steps,
                                    self.predictions_batch_size, self._fixed)
        if self.predictions_batch is not None:
            self._capture(self.predictions_batch, "user")
        if self._fixed.batch is not None:
            self._snapshot(trainer, pl_module, epoch_end=False)

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                             batch_idx: int) -> None:
        if self._fixed.batch is None and self._fixed.stopped is None:
            self._capture(batch, "training")
            self._snapshot(trainer, pl_module, epoch_end=False)
        else:
            self.retire("on_train_batch_start")  # the fixed batch is taken: nothing left to do at batch start

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        clock = self._clock
        clock.seen += 1
        step = trainer.global_step
        if clock.every and step > 0 and step % clock.every == 0 and step != clock.last_step:
            self._snapshot(trainer, pl_module, epoch_end=False)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if trainer.global_step != self._clock.last_step:
            self._snapshot(trainer, pl_module, epoch_end=True)
        self._save_history(trainer)

    @override
    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._clock.ended_normally = True

    # ------------------------------------------------------------------------------------------------ fixed batch

    def _capture(self, batch: Any, source: str) -> None:
        try:
            self._fixed.keep(batch, source, self._most)
        except Exception as err:
            self._fixed.stop(f"could not keep a fixed batch: {err}")

    # ------------------------------------------------------------------------------------------------ snapshots

    def _snapshot(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", epoch_end: bool) -> None:
        if self._fixed.batch is None or self._fixed.stopped is not None:
            return
        clock = self._clock
        clock.last_step = trainer.global_step
        if not cost.periodic_allowed(trainer, "snapshot", clock.taken, clock.required()):
            clock.over_budget += 1
            return
        clock.taken += 1
        try:
            with cost.periodic("snapshot"):
                self._take_snapshot(trainer, pl_module, epoch_end)
        except Unusable as err:
            self._fixed.stop(str(err))
        except Exception as err:  # a check must never lose the user's run
            self._fixed.stop(f"the fixed-batch snapshot failed: {err!r}")

    def _take_snapshot(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", epoch_end: bool) -> None:
        batch = move_data_to_device(self._fixed.batch, pl_module.device)
        x, y = split_batch(batch, self.get_input, self.get_target)
        if x is None:
            raise Unusable("no input found in the batch; pass `get_input=`")
        check_determinism = self.is_enabled("train-mode") and "train-mode" not in self._found.reported and \
            self._clock.evaluates_twice(epoch_end, trainer)
        # isolate_rng: a stochastic model must not draw from the run's generators (zero observer effect).
        with isolate_rng(), torch.no_grad(), eval_mode(pl_module):
            out = call_model(pl_module, batch, x, self.forward_fn)
            keep = samples_to_keep(out, batch_size(batch))
            if keep is not None:
                # A large output (a language model's vocabulary): follow fewer samples from now on, so that every
                # snapshot, its history and its charts stay small.
                self._fixed.batch = slice_batch(self._fixed.batch, slice(0, keep))
                batch = slice_batch(batch, slice(0, keep))
                x, y = split_batch(batch, self.get_input, self.get_target)
                out = out[:keep]
            differs = self._second_look(pl_module, batch, x, out, trainer.world_size) if check_determinism else None
        step, started = trainer.global_step, trainer.global_step > 0
        if not is_finite(out):
            self._report_nonfinite(trainer, out)
            return
        if differs is not None:
            self._report_stochastic(trainer, pl_module, batch, x, *differs)
        y = y if isinstance(y, torch.Tensor) else None
        raw = out
        out = align_to_target(out, y)
        facts = self.collector(trainer).facts
        loss_kind = facts.get("loss_kind")
        kind = output_kind(out, y, loss_kind)
        if self.is_enabled("constant-output"):
            spread = self._spread_collapse(raw, y, kind, started)
            if started:
                self._judge_constant(trainer, pl_module, batch, x, raw, spread)
        if kind is None:
            raise Unusable(f"an output of shape {tuple(out.shape)} is not read as classification, regression or "
                           "a sequence")
        if kind == "sequence":
            out = as_sequence(out, y)
        probs = probabilities(out, kind, loss_kind)
        history = self._history
        if kind != history.kind:  # first snapshot, or the loss kind became known and changed the reading
            history.start(kind, probs, y)
        targets = history.targets.to(probs.device) if history.targets is not None else None
        scalars, p_true, chart = history.record(kind, probs, targets, step, trainer.current_epoch,
                                                    facts.get("ignore_index", -100))
        self._charts.write(trainer, kind, out, chart, targets, p_true, scalars, step, epoch_end,
                           history.columns)

    # ------------------------------------------------------------------------------------------------ end of fit

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._charts.finish(trainer)
        self._save_history(trainer)
        if trainer.is_global_zero and self.is_enabled("constant-output"):
            conclude_constant_output(self, trainer, self._found.constant)
        if not trainer.is_global_zero or not self.is_enabled("prediction-jitter"):
            return
        if self._fixed.stopped is not None:
            self.skip(trainer, "prediction-jitter", self._fixed.stopped)
            return
        if self._fixed.batch is None:
            self.skip(trainer, "prediction-jitter", "no batch was seen to follow")
            return
        clock, history = self._clock, self._history
        progress, words = clock.fraction(), clock.words()
        measure = "change" if history.kind == "regression" else "flips"
        changes = history.columns["jitter"][1:]
        if history.last_shape is None:
            self.skip(trainer, "prediction-jitter", "no snapshot of the fixed batch was taken")
            return
        shape = history.last_shape
        units = shape[0] * (shape[1] if history.kind == "sequence" else 1)
        reason = jitter_unjudgeable(history.kind, units, history.supervised, history.targets is not None,
                                    history.target_scale, self.collector(trainer).facts.get("loss_mask_share"))
        if reason is not None:
            self.skip(trainer, "prediction-jitter", reason)
            return
        threshold = self.threshold("prediction-jitter", "flip_fraction" if measure == "flips" else "change_sd")
        counted = history.supervised if history.kind == "sequence" and history.supervised else units
        verdict = judge_jitter(changes, measure=measure, progress=1.0 if clock.ended_normally else progress,
                               seen=words, threshold=threshold, predictions=counted)
        snapshots = len(history.columns["step"])
        figures = [c for c in changes[len(changes) // 2:] if c is not None]
        late = sorted(figures)[len(figures) // 2] if figures else None
        unit = "" if measure == "flips" else " sd"
        text = f"{snapshots} snapshots of {batch_size(self._fixed.batch)} {self._fixed.source} samples ({history.kind})"
        if clock.over_budget:
            text += f" ({clock.over_budget} more left out to keep within the periodic-work budget)"
        if late is not None:
            text += f"; late median {'flips' if measure == 'flips' else 'change'} {late:.2g}{unit}"
        self.detail(trainer, "prediction-jitter", text)
        if verdict is not None:
            self.report(trainer, "prediction-jitter", "warning", verdict.message, verdict.advice,
                        data={"pattern": verdict.kind, **verdict.data}, at_step=False, key=verdict.kind)

    def _save_history(self, trainer: "pl.Trainer") -> None:
        if not trainer.is_global_zero or not self._history.columns["step"] or self._log_dir is None:
            return
        self._history.save(self._log_dir, self._fixed.source)

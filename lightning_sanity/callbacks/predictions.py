r"""
Prediction dynamics
^^^^^^^^^^^^^^^^^^^

Follow the model's predictions on one fixed batch through training: charts in TensorBoard, a history file, and
the ``prediction-jitter``, ``constant-output`` (during training) and ``train-mode`` (stochastic in eval mode)
judgements.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import lightning.pytorch as pl
import torch
from lightning.fabric.utilities.apply_func import move_data_to_device
from lightning.pytorch.utilities.seed import isolate_rng
from lightning_utilities.core.apply_func import apply_to_collection
from typing_extensions import override

from lightning_sanity import images as charts
from lightning_sanity import cost, tensorboard
from lightning_sanity.batch import batch_size, first_tensor, slice_batch, split_batch
from lightning_sanity._compat import current_batch_idx
from lightning_sanity.callbacks._constant_output import conclude_constant_output
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.checks.episodes import Episodes, unconverged_batchnorm
from lightning_sanity.checks.numerics import is_finite
from lightning_sanity.callbacks.loss_dynamics import batches_before_fit, planned_batches, seen_words
from lightning_sanity.checks.dynamics import (
    JITTER_CHANGE_THRESHOLD,
    JITTER_FLIP_THRESHOLD,
    as_sequence,
    fixed_batch_metrics,
    flip_fraction,
    is_constant_across_samples,
    judge_jitter,
    mean_abs_change,
    output_kind,
    outputs_agree,
    predicted_classes,
    probabilities,
    snapshot_every,
    true_class_probability,
    usable_targets,
)
from lightning_sanity.forward import FORWARD_FN_HINT, CannotCall, model_calls
from lightning_sanity.report import SANITY_DIR

log = logging.getLogger(__name__)

HISTORY_FILE = "predictions.npz"
_UNPLANNED_EVERY = 200
#: the samples x snapshots image is rewritten at every snapshot up to this many, then at epoch ends only.
_TIME_IMAGE_EVERY_SNAPSHOT = 64
#: fewer predictions than this make flip fractions too coarse to judge (1 sample flips 0 % or 100 %).
_MIN_JITTER_PREDICTIONS = 16
#: ... and for token-level outputs, fewer supervised tokens than this (targets not ignored). A flip fraction near the
#: 0.3 threshold over n tokens has a standard error of sqrt(0.21 / n): 64 tokens keep it below a fifth of the
#: threshold, so a few near-tied tokens of a masked LM (15 % of positions supervised) cannot decide the verdict.
_MIN_JITTER_TOKENS = 64
#: most output values a snapshot follows (16 MB of float32): a larger output keeps fewer samples of the fixed batch.
_MAX_OUTPUT_VALUES = 1 << 22
#: most values that go into one TensorBoard histogram: the output's are taken at an even stride beyond that.
_MAX_HISTOGRAM_VALUES = 1 << 16
#: snapshots taken over the planned run whatever the time budget: twice what jitter's late half needs (2 x 4
#: late snapshots), so that both halves of the run are seen.
_REQUIRED_SNAPSHOTS = 16
#: snapshots that all compare two evaluations (train-mode); after them, every 4th and those at epoch ends do.
_DETERMINISM_FIRST = 3
_OUTPUT_KEYS = ("logits", "output", "outputs", "pred", "preds", "prediction", "predictions", "y_hat")


class _Unusable(Exception):
    """The fixed batch cannot be evaluated or read; the message is the reason shown in the summary."""


class PredictionDynamics(SanityCallback):
    r"""Evaluate a fixed batch at every epoch end and every N steps, chart how its predictions move, and judge them.

    The fixed batch is chosen once, without extra passes over the user's loaders and without touching the
    global RNG: ``predictions_batch`` when given, else the first batch of the sanity-check validation run, else
    the first training batch. It is cut to ``predictions_batch_size`` samples, kept on the CPU and moved to the
    model's device for each snapshot. A snapshot calls the model the way every fixed-batch check does
    (:mod:`lightning_sanity.forward`: ``forward_fn``, else ``pl_module(input)``, ``pl_module(**input)`` or
    ``pl_module(*batch)``, as ``forward``'s signature accepts) in eval
    mode under ``no_grad`` and inside ``isolate_rng()``, then restores every module's own ``training`` flag;
    BatchNorm statistics are not touched.

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
      the same output although the inputs differ, and still does at the last snapshot; located where it began.
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
    snapshots x samples x outputs), ``target``, ``probabilities`` (last snapshot), ``kind`` and ``source``.

    Args:
        predictions_batch: a batch (in the structure of the training batches) to follow instead of the default.
        predictions_batch_size: most samples of the fixed batch to keep (1-4096).
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

    Cost: per snapshot one forward pass of the fixed batch, and a second that checks eval determinism on the
    first three snapshots, every fourth and at epoch ends, until it fails (once it fails, a few more to name the
    module and the source); one host transfer; images and histograms while the periodic budget allows (the
    latest at the end of fit in any case); nothing on the other steps.

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
        predictions_batch_size: int = 64,
        predictions_every_n_steps: Optional[int] = None,
        forward_fn: Optional[Callable[[Any, Any], Any]] = None,
        get_input: Optional[Callable[[Any], Any]] = None,
        get_target: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        if predictions_batch is not None and first_tensor(predictions_batch) is None:
            raise ValueError(
                f"`predictions_batch` must be a batch holding at least one tensor, got {type(predictions_batch).__name__}."
            )
        if isinstance(predictions_batch_size, bool) or not isinstance(predictions_batch_size, int) or not (
            1 <= predictions_batch_size <= 4096
        ):
            raise ValueError(f"`predictions_batch_size` must be an int in [1, 4096], got {predictions_batch_size!r}.")
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
        self._batch: Any = None
        self._source = ""
        self._stopped: Optional[str] = None
        self._every = 0
        self._log_dir: Optional[str] = None
        self._planned: Optional[int] = None
        self._before = 0
        self._seen = 0
        self._taken = 0  # snapshots taken in this fit
        self._over_budget = 0  # snapshots left out to keep the periodic work within its budget
        self._ended_normally = False
        self._last_step: Optional[int] = None
        self._kind: Optional[str] = None
        self._targets: Optional[torch.Tensor] = None
        self._target_scale: Optional[float] = None
        self._supervised: Optional[int] = None  # supervised tokens of the fixed batch (sequence outputs)
        self._prev_probs: Optional[torch.Tensor] = None
        self._prev_classes: Optional[torch.Tensor] = None
        self._last_probs: Optional[torch.Tensor] = None
        self._pending_charts: Optional[tuple] = None  # the latest snapshot's charts, while not drawn
        self._history: dict[str, list] = {k: [] for k in (
            "step", "epoch", "loss", "accuracy", "mean_change", "flip_fraction", "jitter",
            "true_class_probability", "predicted_class", "prediction")}
        self._reported: set[str] = set()
        self._constant_where: Optional[str] = None
        self._constant = Episodes()

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
        tensorboard.add_layout_chart(trainer, "sanity: predictions", "fixed-batch loss and accuracy",
                                     r"sanity/predictions/(loss|accuracy)$")
        tensorboard.add_layout_chart(trainer, "sanity: predictions", "change since the last snapshot",
                                     r"sanity/predictions/(mean_change|flip_fraction)$")

    @override
    def on_validation_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        # The sanity check's first validation batch: held out, usually unshuffled, and already delivered.
        if trainer.sanity_checking and self._batch is None and self.predictions_batch is None and dataloader_idx == 0:
            self._capture(batch, "validation")

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        try:
            self._planned = planned_batches(trainer)
            self._before = batches_before_fit(trainer)
            self._every = self._cadence(trainer)
        except Exception as err:  # never lose the run over a counter
            self._planned, self._before, self._every = None, 0, _UNPLANNED_EVERY
            log.debug("lightning_sanity: could not read the planned length: %r", err)
        if self.predictions_batch is not None:
            self._capture(self.predictions_batch, "user")
        if self._batch is not None:
            self._snapshot(trainer, pl_module, epoch_end=False)

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                             batch_idx: int) -> None:
        if self._batch is None and self._stopped is None:
            self._capture(batch, "training")
            self._snapshot(trainer, pl_module, epoch_end=False)
        else:
            self.retire("on_train_batch_start")  # the fixed batch is taken: nothing left to do at batch start

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._seen += 1
        step = trainer.global_step
        if self._every and step > 0 and step % self._every == 0 and step != self._last_step:
            self._snapshot(trainer, pl_module, epoch_end=False)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if trainer.global_step != self._last_step:
            self._snapshot(trainer, pl_module, epoch_end=True)
        self._save_history(trainer)

    @override
    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._ended_normally = True

    # ------------------------------------------------------------------------------------------------ fixed batch

    def _cadence(self, trainer: "pl.Trainer") -> int:
        if self.predictions_every_n_steps is not None:
            return self.predictions_every_n_steps
        steps = trainer.estimated_stepping_batches
        log_every = max(1, int(getattr(trainer, "log_every_n_steps", 1) or 1))
        return snapshot_every(steps, log_every)

    def _capture(self, batch: Any, source: str) -> None:
        try:
            size = batch_size(batch)
            if size is None:
                raise _Unusable("the batch holds no tensor with a batch dimension")
            if size > self.predictions_batch_size:
                batch = slice_batch(batch, slice(0, self.predictions_batch_size))
            # Own CPU copy: no device memory held, and nothing the user does to the batch later reaches it.
            self._batch = apply_to_collection(batch, torch.Tensor, lambda t: t.detach().to("cpu", copy=True))
            self._source = source
        except Exception as err:
            self._stop(f"could not keep a fixed batch: {err}")

    def _stop(self, reason: str) -> None:
        # Only prediction-jitter is this callback's alone: constant-output and train-mode are shared with other
        # callbacks, whose results a skip here must not hide.
        if self._stopped is None:
            self._stopped = reason
            log.debug("lightning_sanity: prediction dynamics stopped: %s", reason)

    # ------------------------------------------------------------------------------------------------ snapshots

    def _forward(self, pl_module: "pl.LightningModule", batch: Any, x: Any) -> torch.Tensor:
        # The same rule as every fixed-batch check (lightning_sanity.forward): decided by forward's signature.
        try:
            calls = model_calls(pl_module, x, batch, self.forward_fn)
        except CannotCall as why:
            raise _Unusable(str(why)) from None
        result, first_error = None, None
        for call in calls:
            try:
                result = call()
                break
            except Exception as err:
                first_error = first_error or err
        else:
            raise _Unusable(f"calling `{calls[0].how}` on the fixed batch failed ({type(first_error).__name__}: "
                            f"{first_error}); {FORWARD_FN_HINT}") from first_error
        out = _output_tensor(result)
        if out is None:
            raise _Unusable(f"the model returned {type(result).__name__}, with no tensor to follow")
        return out

    def _snapshot(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", epoch_end: bool) -> None:
        if self._batch is None or self._stopped is not None:
            return
        self._last_step = trainer.global_step
        if not cost.periodic_allowed(trainer, "snapshot", self._taken, self._required_snapshots()):
            self._over_budget += 1
            return
        self._taken += 1
        try:
            with cost.periodic("snapshot"):
                self._take_snapshot(trainer, pl_module, epoch_end)
        except _Unusable as err:
            self._stop(str(err))
        except Exception as err:  # a check must never lose the user's run
            self._stop(f"the fixed-batch snapshot failed: {err!r}")

    def _required_snapshots(self) -> int:
        """Snapshots taken whatever the budget: enough for jitter's judgement, spread over the planned run."""
        if not self._planned:
            return _REQUIRED_SNAPSHOTS
        return 1 + math.ceil(_REQUIRED_SNAPSHOTS * min(1.0, (self._before + self._seen) / self._planned))

    def _take_snapshot(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", epoch_end: bool) -> None:
        batch = move_data_to_device(self._batch, pl_module.device)
        x, y = split_batch(batch, self.get_input, self.get_target)
        if x is None:
            raise _Unusable("no input found in the batch; pass `get_input=`")
        # A model stochastic in eval mode (dropout forced on) is so from its first snapshot: the second forward
        # runs on the first snapshots, every 4th and at epoch ends, not on all (it is half a snapshot's cost).
        check_determinism = self.is_enabled("train-mode") and "train-mode" not in self._reported and (
            self._taken <= _DETERMINISM_FIRST or self._taken % 4 == 0 or epoch_end)
        # isolate_rng: a stochastic model must not draw from the run's generators (zero observer effect).
        with isolate_rng(), torch.no_grad(), _eval_mode(pl_module):
            out = self._forward(pl_module, batch, x)
            again = self._forward(pl_module, batch, x) if check_determinism else None
        keep = _samples_to_keep(out, batch_size(batch))
        if keep is not None:
            # A large output (a language model's vocabulary): follow fewer samples from now on, so that every
            # snapshot, its history and its charts stay small.
            self._batch = slice_batch(self._batch, slice(0, keep))
            batch = slice_batch(batch, slice(0, keep))
            x, y = split_batch(batch, self.get_input, self.get_target)
            out, again = out[:keep], (again[:keep] if again is not None else None)
        step, started = trainer.global_step, trainer.global_step > 0
        if not is_finite(out):
            self._report_nonfinite(trainer, out)
            return
        if again is not None and not outputs_agree(out, again):
            self._report_stochastic(trainer, pl_module, batch, x, out, again)
        if started and self.is_enabled("constant-output"):
            self._judge_constant(trainer, pl_module, batch, x, out)

        y = y if isinstance(y, torch.Tensor) else None
        out = _align_to_target(out, y)
        loss_kind = self.collector(trainer).facts.get("loss_kind")
        kind = output_kind(out, y, loss_kind)
        if kind is None:
            raise _Unusable(f"an output of shape {tuple(out.shape)} is not read as classification, regression or "
                            "a sequence")
        if kind == "sequence":
            out = as_sequence(out, y)
        probs = probabilities(out, kind, loss_kind)
        if kind != self._kind:  # first snapshot, or the loss kind became known and changed the reading
            self._start_history(kind, probs, y)
        targets = self._targets.to(probs.device) if self._targets is not None else None
        self._record(trainer, kind, out, probs, targets, step, epoch_end)

    def _supervised_mask(self, trainer: "pl.Trainer", targets: torch.Tensor) -> torch.Tensor:
        # Positions whose target is ignored (padding, unmasked tokens of a masked LM) are never trained: their
        # predictions drift freely and say nothing about whether training settles.
        ignore = self.collector(trainer).facts.get("ignore_index", -100)
        mask = (targets >= 0) & (targets != ignore)
        if self._supervised is None:
            self._supervised = int(mask.sum())
        return mask

    def _start_history(self, kind: str, probs: torch.Tensor, y: Optional[torch.Tensor]) -> None:
        self._kind = kind
        self._prev_probs = self._prev_classes = None
        for values in self._history.values():
            values.clear()
        targets = usable_targets(y, kind, probs)
        self._targets = targets.cpu() if targets is not None else None
        self._target_scale = None
        self._supervised = None
        if kind == "regression" and targets is not None:
            # Only the targets give a scale: the outputs' own spread at the first snapshot (an untrained model's
            # near-constant outputs) would turn ordinary learning into "jitter".
            spread = targets.float().std()
            self._target_scale = float(spread) if torch.isfinite(spread) and float(spread) > 0 else None

    def _record(self, trainer: "pl.Trainer", kind: str, out: torch.Tensor, probs: torch.Tensor,
                targets: Optional[torch.Tensor], step: int, epoch_end: bool) -> None:
        classes = predicted_classes(probs, kind)
        figures: dict[str, torch.Tensor] = {}
        if targets is not None:
            figures.update(fixed_batch_metrics(probs, targets, kind))
        if self._prev_probs is not None and self._prev_probs.shape == probs.shape:
            figures["mean_change"] = mean_abs_change(self._prev_probs, probs, kind)
            if classes is not None and self._prev_classes is not None:
                mask = self._supervised_mask(trainer, targets) if kind == "sequence" and targets is not None else None
                if kind == "sequence":
                    # A next token is often uncertain by nature: the argmax of a spread distribution swaps between
                    # near-tied tokens while the distribution barely moves. A flip counts when more than half the
                    # mass sat on one token before and on another after: a decision that changed.
                    decided = (self._prev_probs.max(-1).values >= 0.5) & (probs.max(-1).values >= 0.5)
                    supervised = mask if mask is not None else torch.ones_like(decided)
                    figures["flip_fraction"] = ((self._prev_classes != classes) & decided & supervised).sum() / \
                        supervised.sum().clamp_min(1)
                else:
                    figures["flip_fraction"] = flip_fraction(self._prev_classes, classes, mask)
        p_true = true_class_probability(probs, targets, kind) if targets is not None and kind != "regression" else None
        # One host transfer for every figure of this snapshot.
        names = list(figures)
        values = torch.stack([figures[n].float().reshape(()) for n in names]).tolist() if names else []
        scalars = dict(zip(names, values))
        probs_cpu = probs.cpu()
        history = self._history
        history["step"].append(step)
        history["epoch"].append(trainer.current_epoch)
        for name in ("loss", "accuracy", "mean_change", "flip_fraction"):
            history[name].append(scalars.get(name, float("nan")))
        if kind == "regression":
            change = scalars.get("mean_change")
            jitter = change / self._target_scale if change is not None and self._target_scale else None
            history["prediction"].append(probs_cpu[:, :16].clone())
        else:
            jitter = scalars.get("flip_fraction")
            if p_true is not None:
                history["true_class_probability"].append(p_true.cpu())
            if kind != "sequence":
                history["predicted_class"].append(classes.reshape(classes.shape[0], -1)[:, 0].cpu())
        history["jitter"].append(jitter)
        self._prev_probs, self._prev_classes = probs, classes
        self._last_probs = probs_cpu
        self._write_charts(trainer, kind, out, probs_cpu, targets, p_true, scalars, step, epoch_end)

    # ------------------------------------------------------------------------------------------------ TensorBoard

    def _write_charts(self, trainer: "pl.Trainer", kind: str, out: torch.Tensor, probs: torch.Tensor,
                      targets: Optional[torch.Tensor], p_true: Optional[torch.Tensor], scalars: dict[str, float],
                      step: int, epoch_end: bool) -> None:
        tensorboard.log_scalars(trainer, {tensorboard.tag("predictions", k): v for k, v in scalars.items()
                                          if math.isfinite(v)}, step=step)
        # Images and histograms judge nothing: drawn while the periodic budget allows, else the latest snapshot's
        # are drawn once at the end of fit (conclude), so every run ends with a picture.
        self._pending_charts = (kind, out, probs, targets, p_true, step, epoch_end)
        if cost.periodic_allowed(trainer, "charts", taken=0):
            self._draw_charts(trainer)

    def _draw_charts(self, trainer: "pl.Trainer", final: bool = False) -> None:
        if self._pending_charts is None:
            return
        kind, out, probs, targets, p_true, step, epoch_end = self._pending_charts
        epoch_end = epoch_end or final
        self._pending_charts = None
        writers = tensorboard.writers(trainer)
        if writers:
            with cost.periodic("charts"):
                self._draw(writers, kind, out, probs, targets, p_true, step, epoch_end)

    def _draw(self, writers: list, kind: str, out: torch.Tensor, probs: torch.Tensor,
              targets: Optional[torch.Tensor], p_true: Optional[torch.Tensor], step: int, epoch_end: bool) -> None:
        t_cpu = targets.cpu() if targets is not None else None
        images: dict[str, torch.Tensor] = {}
        flat = out.detach().flatten()
        if flat.numel() > _MAX_HISTOGRAM_VALUES:  # an even stride: no RNG drawn, the same values each snapshot
            flat = flat[:: -(-flat.numel() // _MAX_HISTOGRAM_VALUES)]
        histograms: dict[str, torch.Tensor] = {"outputs": flat.float().cpu()}
        if kind in ("classification", "binary"):
            images["probabilities"] = charts.probabilities_chart(probs, kind)
        elif kind == "sequence" and t_cpu is not None:
            token_p = probs.gather(-1, t_cpu.clamp_min(0)[..., None])[..., 0].masked_fill(t_cpu < 0, float("nan"))
            images["probabilities"] = charts.probabilities_chart(token_p, kind)
        if p_true is not None:
            histograms["true_class_probability"] = p_true.cpu()
            columns = self._history["true_class_probability"]
            if len(columns) <= _TIME_IMAGE_EVERY_SNAPSHOT or epoch_end:
                images["true_class_over_time"] = charts.history_chart(columns, self._history["step"][-len(columns):])
        if kind == "regression" and t_cpu is not None:
            images["prediction_vs_target"] = charts.scatter_chart(probs, t_cpu)
            histograms["residuals"] = (probs - t_cpu).flatten()
        for writer in writers:
            for name, image in images.items():
                tensorboard.add_image(writer, tensorboard.tag("predictions", name), image, step)
            for name, values in histograms.items():
                values = values[torch.isfinite(values)]
                if values.numel():
                    writer.add_histogram(tensorboard.tag("predictions", name), values, global_step=step)

    # ------------------------------------------------------------------------------------------------ findings

    def _report_nonfinite(self, trainer: "pl.Trainer", out: torch.Tensor) -> None:
        if "non-finite" in self._reported or not trainer.is_global_zero:
            return
        self._reported.add("non-finite")
        bad = int((~torch.isfinite(out)).sum())
        self.report(
            trainer, "non-finite", "error",
            f"The model's predictions on the fixed batch hold {bad} non-finite values (NaN/Inf) out of "
            f"{out.numel()} at step {trainer.global_step}: the weights or the forward pass have gone non-finite.",
            "Look at the non-finite check's findings for the first step and module that went non-finite; lower the "
            "learning rate, add gradient clipping, or guard divisions and logs in forward.",
            where="fixed-batch predictions", data={"non_finite": bad, "values": out.numel()}, key="fixed-batch",
        )

    def _report_stochastic(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, x: Any,
                           out: torch.Tensor, again: torch.Tensor) -> None:
        self._reported.add("train-mode")
        if not trainer.is_global_zero:
            return
        diff = float((out.float() - again.float()).abs().max()) if out.shape == again.shape else float("nan")
        culprit = self._diagnose(trainer, pl_module, batch, x, mode="stochastic")
        place = f"first in `{culprit}`" if culprit else f"in {type(pl_module).__name__}.forward itself"
        dropout = self._dropout_in_eval(trainer, pl_module, batch, x)
        if dropout is not None and not dropout:
            # Randomness other than dropout (randn, rand, bernoulli, ...): a VAE's reparameterisation or a
            # diffusion model's noise samples in eval mode on purpose, so this is only worth knowing.
            self.report(
                trainer, "train-mode", "info",
                f"Two evaluations of the same batch in eval mode with the same weights disagree (largest difference "
                f"{diff:.3g}), {place}, and no dropout runs in training mode: the model samples in eval mode.",
                "If that is intended (a VAE's reparameterisation, a diffusion model's noise) there is nothing to do; "
                "otherwise put the sampling behind `if self.training:` or use the mean in evaluation.",
                where=culprit, data={"max_abs_difference": diff, "module": culprit, "source": "sampling"},
                key="eval-sampling",
            )
            return
        self.report(
            trainer, "train-mode", "warning",
            f"Two evaluations of the same batch in eval mode with the same weights disagree (largest difference "
            f"{diff:.3g}), {place}: something random still runs in eval mode, so validation and inference are noisy.",
            "Use `nn.Dropout` modules or pass `training=self.training` to `F.dropout`; keep noise and augmentation "
            "out of `forward` or behind `if self.training:`.",
            where=culprit, data={"max_abs_difference": diff, "module": culprit, "source": "dropout"},
            key="eval-determinism",
        )

    def _dropout_in_eval(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                         x: Any) -> Optional[bool]:
        """Whether a dropout op runs in training mode during an eval-mode forward; None when it cannot be told."""
        if trainer.world_size > 1:
            return None  # no extra forward on one rank alone (see `_diagnose`)
        try:
            watch = _DropoutWatch()
            with isolate_rng(), torch.no_grad(), _eval_mode(pl_module), watch:
                self._forward(pl_module, batch, x)
            return watch.seen
        except Exception as err:  # telling the source apart is a bonus: keep the warning
            log.debug("lightning_sanity: could not watch for dropout: %r", err)
            return None

    def _judge_constant(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, x: Any,
                        out: torch.Tensor) -> None:
        inputs = x if isinstance(x, torch.Tensor) else first_tensor(x)
        if not isinstance(inputs, torch.Tensor) or is_constant_across_samples(inputs, rtol=0.0, atol=0.0):
            return  # identical inputs: an identical output says nothing
        if not trainer.is_global_zero:
            return
        # Judged at the end (conclude): a collapse that clears later is withdrawn to info, never a lasting warning.
        if self._constant.update(is_constant_across_samples(out), trainer.global_step, trainer.current_epoch,
                                 current_batch_idx(trainer)):
            episode = self._constant.current
            if self._constant_where is None:
                self._constant_where = self._diagnose(trainer, pl_module, batch, x, mode="constant")
            episode.info.update(where=self._constant_where, samples=int(out.shape[0]),
                                batchnorm=unconverged_batchnorm(pl_module))

    def _diagnose(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, x: Any,
                  mode: str) -> Optional[str]:
        """Name the first module (by when its forward finished) that causes the symptom, with forward hooks."""
        if trainer.world_size > 1:
            # Extra forwards on rank 0 alone could hang a sharded model (FSDP gathers weights in forward).
            return None
        try:
            samples = batch_size(batch)
            with isolate_rng(), torch.no_grad(), _eval_mode(pl_module):
                first = _trace(pl_module, lambda: self._forward(pl_module, batch, x), samples)
                second = _trace(pl_module, lambda: self._forward(pl_module, batch, x), samples) if mode == "stochastic" else None
        except Exception as err:  # diagnosis is a bonus
            log.debug("lightning_sanity: module diagnosis failed: %r", err)
            return None
        for i, (name, inp, outp) in enumerate(first):
            if mode == "constant":
                if inp is not None and not inp["constant"] and outp is not None and outp["constant"]:
                    return name or None
            elif second is not None and i < len(second) and second[i][0] == name:
                same_in = inp is None or second[i][1] is None or torch.equal(inp["print"], second[i][1]["print"])
                differs = outp is not None and second[i][2] is not None and not outputs_agree(
                    outp["print"], second[i][2]["print"])
                if same_in and differs:
                    return name or None
        return None

    # ------------------------------------------------------------------------------------------------ end of fit

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._draw_charts(trainer, final=True)
        self._save_history(trainer)
        if trainer.is_global_zero and self.is_enabled("constant-output"):
            conclude_constant_output(self, trainer, self._constant)
        if not trainer.is_global_zero or not self.is_enabled("prediction-jitter"):
            return
        if self._stopped is not None:
            self.skip(trainer, "prediction-jitter", self._stopped)
            return
        if self._batch is None:
            self.skip(trainer, "prediction-jitter", "no batch was seen to follow")
            return
        seen = self._before + self._seen
        progress = None if self._planned is None else seen / self._planned
        words = seen_words(seen, self._planned, self._ended_normally)
        measure = "change" if self._kind == "regression" else "flips"
        changes = self._history["jitter"][1:]
        if self._last_probs is None:
            self.skip(trainer, "prediction-jitter", "no snapshot of the fixed batch was taken")
            return
        units = self._last_probs.shape[0] * (self._last_probs.shape[1] if self._kind == "sequence" else 1)
        if units < _MIN_JITTER_PREDICTIONS:
            self.skip(trainer, "prediction-jitter", f"the fixed batch holds {units} predictions, too few to judge "
                      f"jitter (needs {_MIN_JITTER_PREDICTIONS}); pass a larger `predictions_batch`")
            return
        supervised = self._supervised
        if self._kind == "sequence" and supervised is not None and supervised < _MIN_JITTER_TOKENS:
            self.skip(trainer, "prediction-jitter", f"the fixed batch holds {supervised} supervised tokens (targets "
                      f"not ignored), too few to judge jitter (needs {_MIN_JITTER_TOKENS}); pass a larger "
                      "`predictions_batch`")
            return
        if self._kind == "regression" and self._targets is None:
            self.skip(trainer, "prediction-jitter", "the fixed batch has no targets matching the output (an "
                      "autoencoder, or a target the batch reader did not find; pass `get_target=`) and the loss is "
                      "not a classification loss: no class flips or target scale to judge changes by")
            return
        if self._kind == "regression" and self._target_scale is None:
            self.skip(trainer, "prediction-jitter", "regression targets without spread: no scale to judge changes")
            return
        threshold = self.threshold("prediction-jitter", "flip_fraction" if measure == "flips" else "change_sd")
        verdict = judge_jitter(changes, measure=measure, progress=1.0 if self._ended_normally else progress,
                               seen=words, threshold=threshold)
        snapshots = len(self._history["step"])
        figures = [c for c in changes[len(changes) // 2:] if c is not None]
        late = sorted(figures)[len(figures) // 2] if figures else None
        unit = "" if measure == "flips" else " sd"
        text = f"{snapshots} snapshots of {batch_size(self._batch)} {self._source} samples ({self._kind})"
        if self._over_budget:
            text += f" ({self._over_budget} more left out to keep within the periodic-work budget)"
        if late is not None:
            text += f"; late median {'flips' if measure == 'flips' else 'change'} {late:.2g}{unit}"
        self.detail(trainer, "prediction-jitter", text)
        if verdict is not None:
            self.report(trainer, "prediction-jitter", "warning", verdict.message, verdict.advice,
                        data={"pattern": verdict.kind, **verdict.data}, at_step=False, key=verdict.kind)

    def _save_history(self, trainer: "pl.Trainer") -> None:
        if not trainer.is_global_zero or not self._history["step"] or self._log_dir is None:
            return
        try:
            import numpy as np

            h = self._history
            arrays: dict[str, Any] = {
                "step": np.asarray(h["step"], dtype=np.int64),
                "epoch": np.asarray(h["epoch"], dtype=np.int64),
                "kind": np.asarray(self._kind or ""),
                "source": np.asarray(self._source),
            }
            for name in ("loss", "accuracy", "mean_change", "flip_fraction"):
                arrays[name] = np.asarray(h[name], dtype=np.float32)
            for name in ("true_class_probability", "predicted_class", "prediction"):
                if h[name]:
                    arrays[name] = torch.stack(h[name]).numpy()
            if self._targets is not None:
                arrays["target"] = self._targets.numpy()
            if self._last_probs is not None and self._kind != "regression":
                arrays["probabilities"] = self._last_probs.numpy()
            folder = os.path.join(self._log_dir, SANITY_DIR)
            os.makedirs(folder, exist_ok=True)
            np.savez(os.path.join(folder, HISTORY_FILE), **arrays)
        except Exception as err:  # the history is a convenience; training goes on
            log.warning("lightning_sanity: could not save the prediction history: %r", err)


# ---------------------------------------------------------------------------------------------------- helpers


@contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """Eval mode for the whole model, then each module's own ``training`` flag back as it was."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


#: dropout ops (``torch.nn.functional`` and ``torch``) and the default of their training flag.
_DROPOUT_OPS = {
    "dropout": True, "dropout1d": True, "dropout2d": True, "dropout3d": True, "feature_dropout": True,
    "alpha_dropout": False, "feature_alpha_dropout": False,
}


class _DropoutWatch(torch.overrides.TorchFunctionMode):
    """Observes (never changes) the torch functions called, noting a dropout op called with training on."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "").rstrip("_")
        if name in _DROPOUT_OPS and not self.seen:
            if "training" in kwargs or "train" in kwargs:
                training = kwargs.get("training", kwargs.get("train"))
            else:
                training = args[2] if len(args) > 2 else _DROPOUT_OPS[name]
            p = kwargs.get("p", args[1] if len(args) > 1 else 0.5)
            self.seen = bool(training) and not (isinstance(p, (int, float)) and p == 0)
        return func(*args, **kwargs)


def _output_tensor(result: Any) -> Optional[torch.Tensor]:
    """The tensor to follow in a forward's result: itself, ``.logits``, a known dict key, or the first tensor."""
    if isinstance(result, torch.Tensor):
        return result
    logits = getattr(result, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(result, Mapping):
        for key in _OUTPUT_KEYS:
            if isinstance(result.get(key), torch.Tensor):
                return result[key]
    if isinstance(result, (Mapping, Sequence)) and not isinstance(result, str):
        return first_tensor(result)
    return None


def _align_to_target(out: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
    """Undo a flattened (B*T, C) output against (B, T) targets, as language models often return."""
    if (y is not None and out.dim() == 2 and y.dim() == 2 and out.shape[0] != y.shape[0]
            and out.shape[0] == y.numel()):
        return out.reshape(y.shape[0], y.shape[1], out.shape[1])
    return out


def _trace(pl_module: torch.nn.Module, call: Callable[[], Any], samples: Optional[int]) -> list[tuple]:
    """Run ``call`` with hooks on every module; per module call, in the order the calls finished:
    ``(name, input summary, output summary)``, each summary ``{"print": fingerprint, "constant": bool}`` or None."""
    names = {m: n for n, m in pl_module.named_modules()}
    pending: dict[int, list] = {}
    done: list[tuple] = []

    def summary(value: Any) -> Optional[dict[str, Any]]:
        t = value if isinstance(value, torch.Tensor) else first_tensor(value)
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() == 0:
            return None
        d = t.detach().double()
        constant = samples is not None and t.dim() > 0 and t.shape[0] == samples and is_constant_across_samples(t)
        return {"print": torch.stack([d.sum(), (d * d).sum(), d.abs().sum()]), "constant": constant}

    def pre(module: torch.nn.Module, args: Any) -> None:
        pending.setdefault(id(module), []).append(summary(args))

    def post(module: torch.nn.Module, args: Any, output: Any) -> None:
        stack = pending.get(id(module))
        inp = stack.pop() if stack else None
        done.append((names.get(module, ""), inp, summary(output)))

    handles = []
    try:
        for module in names:
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post))
        call()
    finally:
        for handle in handles:
            handle.remove()
    return done


def _samples_to_keep(out: torch.Tensor, samples: Optional[int]) -> Optional[int]:
    """How many samples to keep when the output is too large to follow whole, or None to keep them all.

    >>> _samples_to_keep(torch.zeros(64, 32, 32000), 64), _samples_to_keep(torch.zeros(64, 10), 64)
    (4, None)
    """
    if samples is None or samples < 2 or out.dim() == 0 or out.shape[0] != samples or out.numel() <= _MAX_OUTPUT_VALUES:
        return None
    return max(2, samples * _MAX_OUTPUT_VALUES // out.numel())

r"""
Validation divergence
^^^^^^^^^^^^^^^^^^^^^

``val-divergence``: the validation loss against the training loss and the input-independent baseline, judged
once at the end of fit (or the crash).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from typing_extensions import override

from lightning_sanity.callbacks._label_source import batch_target
from lightning_sanity.callbacks._input_samples import InputSamples
from lightning_sanity.callbacks._refit_inputs import (InputMoments, report_refit, train_pass_complete,
                                                      val_pass_complete)
from lightning_sanity.callbacks._sampler_reach import report_sampler_reach
from lightning_sanity.callbacks._untrained_gap import UntrainedLook
from lightning_sanity.callbacks._token_shift import TokenCounts, report_token_shift
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.checks.loss_baseline import trend_baseline
from lightning_sanity.checks.metric_units import loss_units
from lightning_sanity.checks import dense_alignment as DA, input_shift as IS, relabelled as RL, target_shift as TS
from lightning_sanity.callbacks._val_model_gap import model_gap
from lightning_sanity.callbacks._val_noise_facts import rows as _rows, signed_loss, val_noise_model
from lightning_sanity.checks.val_baseline_end import judge_ends_above_baseline
from lightning_sanity.checks.val_first_look import judge_never_improves
from lightning_sanity.checks import validation as V

log = logging.getLogger(__name__)


class ValDivergence(SanityCallback):
    r"""Compare the logged validation loss with the training loss and the input-independent baseline.

    Reads the validation loss the user logs (``val_loss_key``, or the first of ``val_loss``, ``val/loss``,
    ``validation_loss``, ... found in ``trainer.callback_metrics``, else the shortest logged name holding "val"
    and "loss", "mse" or "nll") at the end of every validation run, and the mean training loss of the steps since
    the previous one (the loss ``training_step`` returns, summed on the device: one host read per validation run).
    The baseline is the best input-independent loss the ``initial-loss`` check computes on the first training
    batch.

    At the end of fit:

    - error (``worse-than-baseline``): the training loss ended below ``(1 - baseline_margin)`` x the baseline, but
      the validation loss never got within ``(1 + baseline_margin)`` x the baseline, or never beat the baseline and
      ended above ``(1 + baseline_margin)`` x it: labels encoded differently in the two splits, a leak readable in
      training only, a preprocessing step applied to one split. "Beat" and "above" are judged beyond the sampling
      noise of the validation mean against the baseline (:mod:`lightning_sanity.checks.val_noise`, from the
      validation rows, the labels the baseline was estimated from and the spread of the constant prediction's
      loss); without a row count the relative margin stands in for the noise;
    - warning (``never-beats-baseline``): over the whole run (fit ended on its own, 3 or more validations) no
      validation loss got below the baseline beyond that noise, while the training loss ended below both the
      noise band and ``(1 - baseline_margin)`` x the baseline; judged only where the band is narrower than
      ``baseline_margin`` x the baseline: validation of a copy that does not train (a slow EMA);
    - warning (``ends-above-baseline``): the training loss ended below ``(1 - baseline_margin)`` x the baseline and
      the last validation loss above ``(1 + baseline_margin)`` x the baseline by 3 standard errors of the same
      noise model (:mod:`lightning_sanity.checks.val_baseline_end`);
    - warning (``never-improves``, :mod:`lightning_sanity.checks.val_first_look`): no baseline needed; not judged
      when validation beat the baseline beyond its noise (it learned something that transfers);
    - warning (``untrained-gap``, :mod:`lightning_sanity.checks.untrained_gap`): the validation loss before training
      far above the first training loss, beyond the noise of both, and never coming within twice it while training
      falls (targets or inputs prepared otherwise for validation); judged without a baseline;
    - info (``overfitting``): the validation loss ended ``rise`` or more above its best, with at least two
      validations after the best, while the training loss went on falling; a warning when it ends more than twice
      the baseline (without a baseline on its scale: twice the validation loss before training).
    - warning (``token-shift``, :mod:`lightning_sanity.checks.token_shift`): one token id's document frequency
      differs between the first epoch's and the first validation run's inputs far beyond sampling noise (validation
      texts not normalised as the training texts were: the unknown token in most of them);
    - warning (``refit-transform``, :mod:`lightning_sanity.checks.refit_transform`): both splits' 2-D float inputs
      carry the exact fingerprint of a scaler (or whitened PCA) fitted on their own rows (``fit_transform(x_val)``);
    - warning (``model-gap``, :mod:`lightning_sanity.checks.val_model_gap`): validation far worse than the same
      model's loss on prediction dynamics' fixed validation batch computed the training way (a TTA it never saw);
    - error (``sampler-reach``): the training loader's ``WeightedRandomSampler`` has fewer weights than the dataset
      has rows, so it only ever draws the first few rows (one weight per class given instead of one per sample).

    The baseline applies to validation only when the validation loss before training (the sanity check's) is
    within a factor 2 of the first training loss (the same loss, the same reduction), and the loss has a natural
    zero: a Gaussian or Poisson NLL (or any negative loss value seen) may be validated shifted by a constant
    (``full=True``), which no ratio can see. Otherwise, or without a
    logged validation loss, the check is skipped with the reason. Only global rank 0 judges. No TensorBoard tags.

    Thresholds (``thresholds={"val-divergence": {...}}`` or :meth:`set_thresholds`): ``baseline_margin`` (0.2)
    and ``rise`` (0.25).

    Args:
        val_loss_key: the logged metric to read as the validation loss; None finds it by name.

    Raises:
        ValueError: ``val_loss_key`` is not a string or None.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.val_divergence import ValDivergence
        >>> trainer = Trainer(callbacks=[ValDivergence(val_loss_key="val/loss")], logger=False)
    """

    checks = ("val-divergence",)
    threshold_specs = {
        "val-divergence": {
            "baseline_margin": Threshold(
                V.BASELINE_MARGIN, "fraction below the input-independent baseline that the training loss must "
                "end, and above it (beyond noise) that validation must be to count as worse", maximum=1.0),
            "rise": Threshold(V.RISE, "fraction above its best at which a validation loss that keeps rising is "
                              "overfitting"),
        },
    }

    def __init__(self, val_loss_key: Optional[str] = None) -> None:
        if val_loss_key is not None and not isinstance(val_loss_key, str):
            raise ValueError(f"`val_loss_key` must be a logged metric name or None, got {val_loss_key!r}.")
        self.val_loss_key = val_loss_key
        self._reset()

    def _reset(self) -> None:
        self.revive()
        self._sum: Any = None  # a float on the CPU, a 0-d tensor on accelerators
        self._sq: Any = None  # the sum of squares, for the step-to-step noise
        self._noise: list[float] = []
        self._count = 0
        self._train: list[float] = []
        self._val: list[float] = []
        self._val_steps: list[int] = []  # the global step of each, to pair with a fixed-batch evaluation
        self._before: Optional[float] = None
        self._key: Optional[str] = None
        self._reason: Optional[str] = None
        self._targets: dict[str, Optional[torch.Tensor]] = {"train": None, "val": None}
        self._targets_done = {"train": False, "val": False}
        self._look = UntrainedLook()  # the sanity check's validation batches
        self._val_count = 0
        self._columns: dict[str, Optional[torch.Tensor]] = {"train": None, "val": None}
        self._val_rows = 0  # samples of the first full validation run (the noise of its mean loss)
        self._val_counted = False
        self._ended = False  # fit ended on its own: the whole planned run was validated
        self._train_rows = 0  # rows of the first training batch (the one batch a one-batch baseline comes from)
        self._tokens = TokenCounts()  # token ids of the first epoch and the first validation run
        self._inputs = InputMoments()  # column moments of 2-D float inputs, same passes (a preprocessing refit)
        self._samples = InputSamples()  # per-sample input scales and input-target correlations, same passes

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self._reset()
            if trainer.world_size > 1:  # each rank sees one shard: no split's moments are whole
                self._inputs.stop()

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._take_inputs("train", batch)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            return
        scale = trainer.accumulate_grad_batches if pl_module.automatic_optimization else 1
        # On the CPU a Python float costs less than a tensor add; elsewhere summed on the device (two small ops, no
        # host sync), read once per validation run.
        if scale == 1 and loss.is_cpu:
            value = float(loss)  # the same float as after detach().reshape(()): two tensor ops a step spared
        else:
            loss = loss.detach().reshape(())
            if scale != 1:  # Lightning divided the loss by the accumulation factor
                loss = loss * scale
            value = float(loss) if loss.device.type == "cpu" else loss.float()
        self._sum = value if self._sum is None else self._sum + value
        self._sq = value * value if self._sq is None else self._sq + value * value
        self._count += 1
        if not self._train_rows:  # once: -1 when the first batch's target cannot be read
            self._train_rows = _rows(batch) or -1
        self._take_targets(trainer, "train", batch)
        self._samples.take("train", batch)
        if "train" not in self._tokens.done:
            self._take_tokens("train", batch)

    @override
    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._ended = True  # not called when fit raised

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._targets_done["train"] = True  # the first epoch's targets describe the training split
        self._samples.end("train")
        self._tokens.done.add("train")
        self._inputs.end("train", train_pass_complete(trainer, self._inputs.batches["train"]))

    @override
    def on_validation_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking:
            self._look.add(batch)  # the samples the validation loss before training averages
            # A batch of three parts or more has its target where the first training step's loss shows it: it comes
            # again in the first validation run.
            if not (type(batch) in (tuple, list) and len(batch) >= 3):
                self._take_targets(trainer, "val", batch, counted=False)
            return
        self._take_targets(trainer, "val", batch)
        if not self._look.counts:
            self._look.count(batch, self.collector(trainer).facts)
        if dataloader_idx == 0:
            self._take_inputs("val", batch)
        if not self._val_counted:
            self._samples.take("val", batch)
            self._take_tokens("val", batch)
            n = _rows(batch)  # an unreadable batch leaves the count unknown
            self._val_rows, self._val_counted = (self._val_rows + n, False) if n else (0, True)

    def _take_inputs(self, split: str, batch: Any) -> None:
        try:
            self._inputs.add(batch, split)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence input moments failed", exc_info=True)
            self._inputs.stop()

    def _take_tokens(self, split: str, batch: Any) -> None:
        try:
            self._tokens.add(batch, split)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence token counts failed", exc_info=True)
            self._tokens.off = True

    def _take_targets(self, trainer: "pl.Trainer", split: str, batch: Any, counted: bool = True) -> None:
        if self._targets_done[split]:
            return
        try:
            y = batch_target(batch, self.collector(trainer).facts)  # `(users, items, rating)`: the rating
            if counted:  # the sanity check's batches come again in the first validation run: counted once
                self._columns[split] = RL.merge_counts(self._columns[split], RL.column_counts(y))
            moments = TS.target_moments(y)
            if counted and split == "val" and moments is not None:
                self._val_count += y.numel()  # on the host: the sanity check's batches are not counted
            if moments is None:
                self._targets_done[split] = True
            else:  # on the device, read once at the end of fit
                self._targets[split] = TS.merge_moments(self._targets[split], moments)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence target moments failed", exc_info=True)
            self._targets_done[split] = True

    @override
    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not trainer.sanity_checking:
            self._inputs.end("val", val_pass_complete(trainer, self._inputs.batches["val"]))
            self._val_counted = True
            self._targets_done["val"] = True  # the first full validation run's targets describe the split
            self._samples.end("val")
        try:
            value = self._read_val(trainer)
            if value is None:
                return
            if trainer.sanity_checking:
                self._before = value if self._before is None else self._before
                self.collector(trainer).facts["val_loss_before_training"] = self._before  # for loss-trend
                return
            if self._sum is None or self._count == 0:
                return  # no training step since the last validation: nothing to pair it with
            train = float(self._sum) / self._count
            square = float(self._sq) / self._count
            self._noise.append(math.sqrt(max(square - train * train, 0.0) * self._count / max(self._count - 1, 1))
                               if self._count > 1 else math.nan)
            self._sum, self._sq, self._count = None, None, 0
            self._train.append(train)
            self._val.append(value)
            self._val_steps.append(trainer.global_step)
            facts = self.collector(trainer).facts
            _, _, facts["val_losses"], before = self._in_loss_units(facts)  # for loss-trend: learning shown on val
            if before is not None:  # in the loss's units, now that the loss is known
                facts["val_loss_before_training"] = before
        except Exception as err:  # never lose the run over a diagnostic
            log.debug("val-divergence read failed", exc_info=True)
            self._reason = self._reason or f"could not read the losses: {err!r}"

    def _in_loss_units(self, facts: dict) -> tuple[Any, Optional[str], list[float], Optional[float]]:
        """``(unit, note, val, before)`` of :func:`~lightning_sanity.checks.metric_units.loss_units`: the validation
        figures in the training loss's units (as logged when ``unit`` is None: another error measure)."""
        unit, note = loss_units(self._key or "", facts.get("loss_kind"))
        same = unit or (lambda v: v)
        return unit, note, [same(v) for v in self._val], None if self._before is None else same(self._before)

    def _val_samples(self) -> Optional[float]:
        """Regression targets in one validation run (None for class labels or when not counted)."""
        return float(self._val_count) if self._val_count and self._targets_done["val"] else None

    def _read_val(self, trainer: "pl.Trainer") -> Optional[float]:
        metrics = trainer.callback_metrics
        key = self.val_loss_key or self._key or V.val_loss_key(metrics)
        if key is None or key not in metrics:
            return None
        self._key = key
        value = metrics[key]
        value = float(value) if isinstance(value, torch.Tensor) and value.numel() == 1 else value
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        check = "val-divergence"
        if not self.is_enabled(check) or not trainer.is_global_zero:
            return
        if self._reason:
            self.skip(trainer, check, self._reason)
            return
        report_token_shift(self, trainer)
        report_refit(self, trainer)
        shift = (TS.judge_target_shift(self._targets["train"], self._targets["val"])
                 or RL.judge_relabelled(self._columns["train"], self._columns["val"]))
        if shift is not None:  # judged from the targets alone: no logged validation loss needed
            self.report(trainer, check, shift.severity, shift.message, shift.advice, where="validation targets",
                        at_step=False, key=shift.kind, data={"pattern": shift.kind, **shift.data})
        if not self._val:
            if shift is not None:
                return
            why = (f"`{self.val_loss_key}` was never logged" if self.val_loss_key else
                   "no validation loss was logged (log one named like `val_loss`, or pass `val_loss_key=`)")
            self.skip(trainer, check, why if self._key is None else "no validation run after training started")
            return
        facts = self.collector(trainer).facts
        # A metric named as the root of the training loss (`val_rmse` beside an MSE) is judged squared; one named
        # as another error measure is compared with itself only.
        unit, unit_note, val, before = self._in_loss_units(facts)
        if shift is None:  # validation inputs on another scale, and a validation loss that shows it
            shift = IS.judge_input_shift(IS.histogram(self._samples.scales("train")),
                                         IS.histogram(self._samples.scales("val")), self._train[-1], val[-1])
            if shift is not None:
                self.report(trainer, check, shift.severity, shift.message, shift.advice, where="validation inputs",
                            at_step=False, key=shift.kind, data={"pattern": shift.kind, **shift.data})
        aligned = self._samples.aligned
        if shift is None and aligned["train"] and aligned["val"]:  # masks not registered with images
            shift = DA.judge_misaligned(aligned["train"], aligned["val"], self._train[-1], val[-1])
            if shift is not None:
                self.report(trainer, check, shift.severity, shift.message, shift.advice, where="validation targets",
                            at_step=False, key=shift.kind, data={"pattern": shift.kind, **shift.data})
        baseline, _ = trend_baseline(facts)
        initial = facts.get("initial_loss")
        if baseline is not None:
            if unit is None:
                baseline, scale_note = None, str(unit_note)
            elif signed_loss(facts, self._train, val, before):
                baseline = None
                scale_note = ("the loss can be negative (no natural zero): a ratio cannot tell that the validation "
                              "loss is the training loss and not shifted by a constant; compared with itself only")
            elif before is None or not isinstance(initial, (int, float)):
                baseline = None
                scale_note = "no validation loss before training to tell it is on the training loss's scale"
            elif not V.comparable(before, float(initial)):
                baseline = None
                scale_note = (f"`{self._key}` before training ({before:.3g}) is not on the scale of the first "
                              f"training loss ({float(initial):.3g}): compared with itself only")
            else:
                scale_note = f"baseline {baseline:.3g}"
            if unit_note and unit is not None:
                scale_note = f"{unit_note}; {scale_note}"
        else:
            scale_note = "no input-independent baseline"
        noise = val_noise_model(facts, baseline, self._val_rows, self._train_rows)
        verdict = None if shift is not None else V.judge_val_divergence(
            self._train, val, baseline, margin=self.threshold(check, "baseline_margin"),
            rise=self.threshold(check, "rise"), before=before, noise=noise, complete=self._ended)
        if shift is None and (verdict is None or verdict.severity == "info"):  # the splits apart before training
            verdict = self._look.judge(facts, pl_module, unit is not None, before, val, self._train,
                                       self._noise) or verdict
        # Validation that beat the baseline beyond its noise learned something that transfers: its untrained look
        # (the sanity check's few batches) does not overrule that.
        beat = noise is not None and V.beat_baseline(val, baseline, noise)
        if shift is None and not beat and (verdict is None or verdict.kind == "overfitting"):  # any loss
            verdict = judge_never_improves(before, val, self._train, self._noise) or verdict
        if shift is None and (verdict is None or verdict.severity == "info"):  # validation is not the model
            verdict = model_gap(trainer, pl_module, facts, val, self._val_steps, self._train, baseline,
                                self._val_rows) or verdict
        if shift is None and (verdict is None or verdict.severity == "info"):
            verdict = judge_ends_above_baseline(self._train, val, baseline, self._val_rows,
                                                margin=self.threshold(check, "baseline_margin"),
                                                noise=noise) or verdict
        self.detail(trainer, check, f"`{self._key}` {val[0]:.3g} -> {val[-1]:.3g} (best "
                                    f"{min(val):.3g}) over {len(val)} validation(s), train "
                                    f"{self._train[0]:.3g} -> {self._train[-1]:.3g}; {scale_note}")
        if verdict is not None:
            said = f" (The figures are {unit_note}.)" if unit is not None and unit_note else ""
            self.report(trainer, check, verdict.severity, verdict.message + said, verdict.advice, where=self._key,
                        at_step=False, key=verdict.kind, data={"pattern": verdict.kind, **verdict.data})
        report_sampler_reach(self, trainer, self._key, self._val)

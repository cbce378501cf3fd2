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

from lightning_sanity._compat import loader_epoch_metrics
from lightning_sanity.callbacks._input_samples import InputSamples
from lightning_sanity.callbacks._refit_inputs import (InputMoments, report_refit, train_pass_complete,
                                                      val_pass_complete)
from lightning_sanity.callbacks._sampler_reach import report_sampler_reach
from lightning_sanity.callbacks._untrained_gap import UntrainedLook
from lightning_sanity.callbacks._val_targets import SplitTargets
from lightning_sanity.callbacks._val_loaders import MAX_LOADERS, ExtraLoaders, finite, loader_key
from lightning_sanity.callbacks._token_shift import TokenCounts, report_token_shift
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.checks.metric_units import loss_units
from lightning_sanity.checks import dense_alignment as DA, input_shift as IS
from lightning_sanity.callbacks._val_model_gap import model_gap
from lightning_sanity.callbacks._val_noise_facts import (baseline_on_val_scale, rows as _rows,
                                                          val_noise_model)
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
    Several validation dataloaders are judged each on its own, the first four
    (:mod:`lightning_sanity.callbacks._val_loaders`); a finding names its loader ("validation dataloader 1").

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
        self._targets = SplitTargets()  # target moments and class columns per split
        self._look = UntrainedLook()  # the sanity check's validation batches
        self._val_rows = 0  # samples of the first full validation run (the noise of its mean loss)
        self._val_counted = False
        self._ended = False  # fit ended on its own: the whole planned run was validated
        self._train_rows = 0  # rows of the first training batch (the one batch a one-batch baseline comes from)
        self._tokens = TokenCounts()  # token ids of the first epoch and the first validation run
        self._inputs = InputMoments()  # column moments of 2-D float inputs, same passes (a preprocessing refit)
        self._samples = InputSamples()  # per-sample input scales and input-target correlations, same passes
        self._loaders = ExtraLoaders()  # validation dataloaders after the first, each judged on its own

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self._reset()
            if trainer.world_size > 1:  # each rank sees one shard: no split's moments are whole
                self._inputs.stop()

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._inputs.add(batch, "train")
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            return
        scale = trainer.accumulate_grad_batches if pl_module.automatic_optimization else 1
        if scale != 1:  # Lightning divided the loss by the accumulation factor
            loss = loss.detach() * scale
        # On the CPU a Python float costs less than a tensor add (and needs no detach or reshape); elsewhere summed
        # on the device (two small ops, no host sync), read once per validation run.
        value = float(loss) if loss.is_cpu else loss.detach().reshape(()).float()
        self._sum = value if self._sum is None else self._sum + value
        self._sq = value * value if self._sq is None else self._sq + value * value
        self._count += 1
        if not self._train_rows:  # once: -1 when the first batch's target cannot be read
            self._train_rows = _rows(batch) or -1
        self._targets.take(self.collector(trainer).facts, "train", batch)
        self._samples.take("train", batch)
        if "train" not in self._tokens.done:
            self._tokens.add(batch, "train")

    @override
    def on_fit_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._ended = True  # not called when fit raised

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._targets.done["train"] = True  # the first epoch's targets describe the training split
        self._samples.end("train")
        self._tokens.done.add("train")
        self._inputs.end("train", train_pass_complete(trainer, self._inputs.batches["train"]))

    @override
    def on_validation_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx:  # loader 0's figures describe loader 0 alone
            self._other_loader(trainer, dataloader_idx, batch)
            return
        if trainer.sanity_checking:
            self._look.add(batch)  # the samples the validation loss before training averages
            # A batch of three parts or more has its target where the first training step's loss shows it: it comes
            # again in the first validation run.
            if not (type(batch) in (tuple, list) and len(batch) >= 3):
                self._targets.take(self.collector(trainer).facts, "val", batch, counted=False)
            return
        self._targets.take(self.collector(trainer).facts, "val", batch)
        if not self._look.counts:
            self._look.count(batch, self.collector(trainer).facts)
        self._inputs.add(batch, "val")
        if not self._val_counted:
            self._samples.take("val", batch)
            self._tokens.add(batch, "val")
            n = _rows(batch)  # an unreadable batch leaves the count unknown
            self._val_rows, self._val_counted = (self._val_rows + n, False) if n else (0, True)

    def _other_loader(self, trainer: "pl.Trainer", index: int, batch: Any) -> None:
        loader = self._loaders.get(index)
        if loader is None:
            return
        self._targets.add(loader.split)
        sanity = trainer.sanity_checking
        if not (sanity and type(batch) in (tuple, list) and len(batch) >= 3):  # as for loader 0
            self._targets.take(self.collector(trainer).facts, loader.split, batch, counted=not sanity)
        if not sanity:
            self._loaders.take(loader, batch)

    @override
    def on_validation_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        # With several loaders Lightning never publishes the sanity check's figures: read them at each loader's last
        # sanity batch (one read per loader, before training only; not under DDP, where a read computes collectives).
        try:
            planned = trainer.num_sanity_val_batches if trainer.sanity_checking and trainer.world_size == 1 else []
            if len(planned) < 2 or dataloader_idx >= MAX_LOADERS or batch_idx + 1 != planned[dataloader_idx]:
                return
            metrics = loader_epoch_metrics(trainer)
            value = self._read_val(trainer, metrics) if dataloader_idx == 0 else None
            if value is not None and self._before is None:
                self._before = self.collector(trainer).facts["val_loss_before_training"] = value  # for loss-trend
            elif dataloader_idx and self._key:
                self._loaders.read(metrics, self._key, sanity=True, index=dataloader_idx)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence sanity-check read failed", exc_info=True)

    @override
    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not trainer.sanity_checking:
            self._inputs.end("val", val_pass_complete(trainer, self._inputs.batches["val"]))
            self._val_counted = True
            self._targets.end_validation()
            self._samples.end("val")
        self._loaders.end_run(trainer.sanity_checking)
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
            self._loaders.read(trainer.callback_metrics, self._key, sanity=False)
            self._val_steps.append(trainer.global_step)
            facts = self.collector(trainer).facts
            # for loss-trend: learning shown on validation
            _, _, facts["val_losses"], before = self._in_loss_units(facts, self._key, self._val, self._before)
            if before is not None:  # in the loss's units, now that the loss is known
                facts["val_loss_before_training"] = before
        except Exception as err:  # never lose the run over a diagnostic
            log.debug("val-divergence read failed", exc_info=True)
            self._reason = self._reason or f"could not read the losses: {err!r}"

    def _in_loss_units(self, facts: dict, key: Optional[str], val: list[float],
                       before: Optional[float]) -> tuple[Any, Optional[str], list[float], Optional[float]]:
        """``(unit, note, val, before)`` of :func:`~lightning_sanity.checks.metric_units.loss_units`: one loader's
        validation figures in the training loss's units (as logged when ``unit`` is None: another error measure)."""
        unit, note = loss_units(key or "", facts.get("loss_kind"))
        same = unit or (lambda v: v)
        return unit, note, [same(v) for v in val], None if before is None else same(before)

    def _val_samples(self) -> Optional[float]:
        """Regression targets in one validation run (None for class labels or when not counted)."""
        count = self._targets.val_count
        return float(count) if count and self._targets.done["val"] else None

    def _read_val(self, trainer: "pl.Trainer", metrics: Any = None) -> Optional[float]:
        metrics = trainer.callback_metrics if metrics is None else metrics
        key = self.val_loss_key or self._key or V.val_loss_key(metrics)
        if key is not None and not (self.val_loss_key or self._key):  # found by name: loader 0's, if it has one
            first = loader_key(key, 0)
            key = first if first in metrics else key
        if key is None or key not in metrics:
            return None
        self._key = key
        return finite(metrics[key])

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
        shift = self._target_shift(trainer, "val", "validation targets")
        loaders = self._loaders.judged(len(self._val))
        shifts = {loader.index: self._target_shift(trainer, loader.split, f"{loader.name} targets")
                  for loader in self._loaders.loaders.values()}
        if not self._val:
            if shift is not None or any(shifts.values()):
                return
            why = (f"`{self.val_loss_key}` was never logged" if self.val_loss_key else
                   "no validation loss was logged (log one named like `val_loss`, or pass `val_loss_key=`)")
            self.skip(trainer, check, why if self._key is None else "no validation run after training started")
            return
        details = [self._judge(trainer, pl_module, shift, self._key, self._val, self._before, self._val_rows,
                               self._samples.scales("val"))]
        for loader in loaders:  # each validation dataloader on its own: another site, another period
            details.append(self._judge(trainer, pl_module, shifts.get(loader.index), loader.key, loader.val,
                                       loader.before, max(loader.rows, 0), loader.scales, loader.name))
        if self._loaders.dropped:
            details.append(f"validation dataloaders {MAX_LOADERS} to {self._loaders.dropped} not judged (the "
                           f"first {MAX_LOADERS} are)")
        self.detail(trainer, check, "; ".join(details))
        report_sampler_reach(self, trainer, self._key, self._val)

    def _target_shift(self, trainer: "pl.Trainer", split: str, where: str) -> Optional[Any]:
        """Validation targets (of one loader) against the training targets, reported; judged from the targets alone:
        no logged validation loss needed."""
        shift = self._targets.judge(split)
        if shift is not None:
            self._say(trainer, shift, where)
        return shift

    def _say(self, trainer: "pl.Trainer", found: Any, where: Optional[str], note: str = "") -> None:
        said = found.message if where is None or not where.startswith("validation dataloader") else (
            f"{where[0].upper()}{where[1:]}: {found.message}")
        self.report(trainer, "val-divergence", found.severity, said + note, found.advice, where=where,
                    at_step=False, key=found.kind, data={"pattern": found.kind, **found.data})

    def _judge(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", shift: Any, key: Optional[str],
               raw_val: list[float], raw_before: Optional[float], val_rows: int, scales: list,
               name: Optional[str] = None) -> str:
        """Judge one validation dataloader's losses (``name`` None: loader 0, which alone has the sanity check's
        look, the fixed batch and the masks); returns its figures for the summary."""
        check = "val-divergence"
        facts = self.collector(trainer).facts
        # A metric named as the root of the training loss (`val_rmse` beside an MSE) is judged squared; one named
        # as another error measure is compared with itself only.
        unit, unit_note, val, before = self._in_loss_units(facts, key, raw_val, raw_before)
        if shift is None:  # validation inputs on another scale, and a validation loss that shows it
            shift = IS.judge_input_shift(IS.histogram(self._samples.scales("train")), IS.histogram(scales),
                                         self._train[-1], val[-1])
            if shift is not None:
                self._say(trainer, shift, name or "validation inputs")
        aligned = self._samples.aligned
        if shift is None and name is None and aligned["train"] and aligned["val"]:  # masks not registered
            shift = DA.judge_misaligned(aligned["train"], aligned["val"], self._train[-1], val[-1])
            if shift is not None:
                self._say(trainer, shift, "validation targets")
        baseline, scale_note = baseline_on_val_scale(facts, unit, unit_note, key, self._train, val, before)
        noise = val_noise_model(facts, baseline, val_rows, self._train_rows)
        verdict = None if shift is not None else V.judge_val_divergence(
            self._train, val, baseline, margin=self.threshold(check, "baseline_margin"),
            rise=self.threshold(check, "rise"), before=before, noise=noise, complete=self._ended)
        if shift is None and name is None and (verdict is None or verdict.severity == "info"):  # apart untrained
            verdict = self._look.judge(facts, pl_module, unit is not None, before, val, self._train,
                                       self._noise) or verdict
        # Validation that beat the baseline beyond its noise learned something that transfers: its untrained look
        # (the sanity check's few batches) does not overrule that.
        beat = noise is not None and V.beat_baseline(val, baseline, noise)
        if shift is None and not beat and (verdict is None or verdict.kind == "overfitting"):  # any loss
            verdict = judge_never_improves(before, val, self._train, self._noise) or verdict
        if shift is None and name is None and (verdict is None or verdict.severity == "info"):  # not the model
            verdict = model_gap(trainer, pl_module, facts, val, self._val_steps, self._train, baseline,
                                self._val_rows) or verdict
        if shift is None and (verdict is None or verdict.severity == "info"):
            verdict = judge_ends_above_baseline(self._train, val, baseline, val_rows,
                                                margin=self.threshold(check, "baseline_margin"),
                                                noise=noise) or verdict
        if verdict is not None:
            said = f" (The figures are {unit_note}.)" if unit is not None and unit_note else ""
            self._say(trainer, verdict, name or key, said)
        return (f"`{key}` {val[0]:.3g} -> {val[-1]:.3g} (best {min(val):.3g}) over {len(val)} validation(s), train "
                f"{self._train[0]:.3g} -> {self._train[-1]:.3g}; {scale_note}")

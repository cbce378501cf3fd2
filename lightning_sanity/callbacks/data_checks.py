r"""
Data checks
^^^^^^^^^^^

The ``input-scale`` and ``label-distribution`` checks: statistics of the inputs and targets of the first few
training batches, the ones Lightning already delivers (no extra pass over the data).

This module holds the callback (hooks, how many batches, when to judge); reading the batches is in
``_data_sample``, each check's findings in :mod:`~lightning_sanity.callbacks.input_scale` and
:mod:`~lightning_sanity.callbacks.label_distribution`, the math in :mod:`lightning_sanity.checks.data`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import STEP_OUTPUT
from typing_extensions import override

from lightning_sanity.callbacks._data_sample import _BatchReader, _InputSample, _LabelSample
from lightning_sanity.callbacks._label_source import LABEL_PART_FACT, LabelSource
from lightning_sanity.callbacks._step_watch import StepWatch
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.callbacks.input_scale import FrozenStatistics, _InputScaleGlue
from lightning_sanity.callbacks.label_distribution import _LabelDistributionGlue
from lightning_sanity.checks import data as D
from lightning_sanity.checks.padding_labels import PaddingLabels, model_padding_token

log = logging.getLogger(__name__)


class DataChecks(_BatchReader, _InputScaleGlue, _LabelDistributionGlue, SanityCallback):
    r"""Check the inputs and the labels of the first training batches.

    - ``input-scale``: NaN or Inf in the inputs (error); inputs far from unit scale, such as raw 0..255 pixels or
      features with a spread in the hundreds (warning; only ``info`` when the model rescales its input first, e.g.
      ``x / 255`` or an input BatchNorm); every sample of a batch identical (error); features that never change
      (``info`` only: constant border pixels and unused one-hot columns are normal). Integer inputs (token ids) are
      not judged on scale. Kind ``heavy-tail`` (warning): far from unit scale with non-negative features spread over
      orders of magnitude (a raw power spectrogram) and no log taken, even behind an input BatchNorm. Kind
      ``frozen-statistics`` (warning): on the first batch, the first eval-mode BatchNorm
      with learned running statistics sees pre-activations more than 4x wider or narrower than those statistics
      (inputs not normalised as in pretraining).
    - ``label-distribution``: all labels equal (error); labels out of range for the model's output width (error);
      batches that each hold (nearly) one class while the data hold several: sorted data, not shuffled (warning);
      identical inputs carrying different labels (warning when they are a sizeable share); heavy imbalance
      (warning with the bias advice when the model's initial prediction ignores it, ``info`` when the output bias
      or the loss weights already account for it). Regression targets only get the all-equal check.

    The batch's input and target come from :func:`lightning_sanity.batch.split_batch`. Cost: for the first
    ``data_batches`` batches, a few reductions and one device-to-host copy per batch (on the first, also one
    per-channel std of the first frozen BatchNorm's input, for ``frozen-statistics``); nothing afterwards. Output
    width, loss kind and whether the initial prediction matches the label prior come from
    :class:`~lightning_sanity.callbacks.loss_inspector.LossInspector` when it runs.

    Writes no TensorBoard tags.

    Thresholds (``thresholds={...}`` or :meth:`set_thresholds`): ``input-scale``: ``rms_large`` and
    ``feature_rms_large`` (far from unit scale: the input's RMS, or one feature's, above these), ``max_small`` (tiny
    inputs: the largest magnitude below this); ``label-distribution``: ``imbalance_ratio`` (heavy imbalance: the most
    frequent class at least this many times the least frequent one).

    Args:
        get_input: ``batch -> input`` (tensor, or a dict / list of tensors), when the batch format is not
            recognised.
        get_target: ``batch -> target tensor``, likewise.
        data_batches: how many of the first training batches to look at.

    Raises:
        ValueError: ``get_input`` / ``get_target`` is not callable, or ``data_batches`` is not a positive integer.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.data_checks import DataChecks
        >>> trainer = Trainer(callbacks=[DataChecks(get_target=lambda batch: batch["y"])], logger=False)
        >>> DataChecks(data_batches=0)
        Traceback (most recent call last):
        ...
        ValueError: `data_batches` must be a positive integer, got 0.
    """

    checks = ("input-scale", "label-distribution")
    threshold_specs = {
        "input-scale": {
            "rms_large": Threshold(D.LARGE_RMS, "an input whose RMS is above this is far from unit scale"),
            "feature_rms_large": Threshold(
                D.LARGE_FEATURE_RMS, "an input with one feature whose RMS is above this is far from unit scale"),
            "max_small": Threshold(
                D.SMALL_MAX, "an input whose largest magnitude is below this is tiny (scaled twice?)"),
        },
        "label-distribution": {
            "imbalance_ratio": Threshold(
                D.IMBALANCE_RATIO, "labels are heavily imbalanced when the most frequent class is at least this many "
                "times the least frequent one", minimum=1.0),
        },
    }

    def __init__(
        self,
        get_input: Optional[Callable[[Any], Any]] = None,
        get_target: Optional[Callable[[Any], Any]] = None,
        data_batches: int = 4,
    ) -> None:
        for name, fn in (("get_input", get_input), ("get_target", get_target)):
            if fn is not None and not callable(fn):
                raise ValueError(f"`{name}` must be a callable `batch -> tensor` or None, got {fn!r}.")
        if isinstance(data_batches, bool) or not isinstance(data_batches, int) or data_batches < 1:
            raise ValueError(f"`data_batches` must be a positive integer, got {data_batches!r}.")
        self.get_input, self.get_target, self.data_batches = get_input, get_target, data_batches
        self._reset()
    def _reset(self) -> None:
        self.revive()
        self._seen = 0
        self._done = False
        self._inputs = _InputSample()
        self._labels = _LabelSample()
        self._in_batch_reported = False
        self._watch: Optional[StepWatch] = None
        self._frozen = FrozenStatistics()  # input-scale kind frozen-statistics, on the first batch
        self._label_source, self._label_index = LabelSource(), None  # the batch part the loss compares with
        self._first_targets: list[torch.Tensor] = []
        self._label_part: Optional[tuple[int, int]] = None  # (index, parts) of the loss's target in a tuple batch

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._stop_watch()
        self._reset()
        self._labels.padding = PaddingLabels(model_padding_token(pl_module))  # checks/padding_labels.py

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if self._done:  # the batches are judged: nothing left to do per batch
            self.retire("on_train_batch_start", "on_before_backward", "on_train_batch_end")
            return
        if self._seen >= self.data_batches:
            return
        try:
            self._observe(batch)
            if self._seen == 1:
                self._label_source.start(batch, self.get_target)
        except Exception as err:  # nothing may lose the user's run
            log.warning("lightning_sanity: the data checks could not read a batch: %r", err)
            self._inputs.missing = self._labels.missing = f"could not read the batch: {err!r}"
            self._done = True
        self._watch_frozen_statistics(pl_module)

    @override
    def on_before_backward(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: torch.Tensor) -> None:
        self._stop_watch()
        self._first_targets = self._first_targets or self._label_source.stop()

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: STEP_OUTPUT,
                           batch: Any, batch_idx: int) -> None:
        self._stop_watch()
        if self._seen == 1 and not self._done:
            self._relabel(batch)
            if self._label_part is not None:  # for val-divergence's target moments: the same part in both splits
                self.collector(trainer).facts[LABEL_PART_FACT] = self._label_part
        if not self._done and self._seen >= self.data_batches:
            self._judge(trainer)
        self._judge_frozen_statistics(trainer)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self._done and self._seen:
            self._judge(trainer)  # fewer batches in the epoch than `data_batches`

    @override
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self._stop_watch()
        self._label_source.stop()
        self._frozen.remove()

    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._stop_watch()
        self._label_source.stop()
        self._frozen.remove()  # a crash inside the first step leaves them registered
        if not self._done:
            if self._seen:
                self._judge(trainer)
            elif not (self._inputs.missing or self._labels.missing):
                self._inputs.missing = self._labels.missing = "no training batch was seen"
        if self._inputs.missing and not self._inputs.stats:
            self.skip(trainer, "input-scale", self._inputs.missing)
        if (self._labels.missing and not self._labels.values and not self._labels.ranges
                and not self._in_batch_reported):
            self.skip(trainer, "label-distribution", self._labels.missing)

    def _relabel(self, batch: Any) -> None:
        """Read the labels from the batch part the first step's loss compared with, when it is not the one
        ``split_batch`` took (``(tokens, offsets, y)``: the labels are third)."""
        try:
            index = self._label_source.find(batch, self._first_targets)
            self._first_targets = []
            self._label_part = None if index is None else (index, len(batch))
            if index is None or index == 1 or self._labels.missing:
                return
            old, self._label_index = self._labels, index
            # Nothing read from the wrong part may stay: the padding counts too start again from this batch.
            padding = PaddingLabels(old.padding.pad_id) if old.padding is not None else None
            self._labels = _LabelSample(pad_id=old.pad_id, padding=padding)
            x = batch[0]
            self._labels.field = f"batch[{index}]"
            self._collect_labels(batch[index], self._input_fields(x, self._input_name(batch)), batch)
            if padding is not None:
                padding.add_batch(batch, x, batch[index])
        except Exception as err:  # nothing may lose the user's run
            log.debug("lightning_sanity: reading the loss's label part failed: %r", err)

    def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()

    # ------------------------------------------------------------------ judging

    def _judge(self, trainer: "pl.Trainer") -> None:
        self._done = True
        self._stop_watch()
        try:
            self._judge_inputs(trainer)
        except Exception as err:
            log.warning("lightning_sanity: the input-scale check failed: %r", err)
            self.skip(trainer, "input-scale", f"internal error: {err!r}")
        try:
            self._in_batch_reported = self._judge_in_batch_target(trainer)
            self._judge_labels(trainer)
        except Exception as err:
            log.warning("lightning_sanity: the label-distribution check failed: %r", err)
            self.skip(trainer, "label-distribution", f"internal error: {err!r}")

r"""
Data checks
^^^^^^^^^^^

The ``input-scale`` and ``label-distribution`` checks: statistics of the inputs and targets of the first few
training batches, the ones Lightning already delivers (no extra pass over the data).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import STEP_OUTPUT
from typing_extensions import override

from lightning_sanity.batch import INPUT_KEYS, TARGET_KEYS, split_batch
from lightning_sanity.callbacks._step_watch import META_OPS, SHAPE_OPS, StepWatch, function_name
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.checks import data as D
from lightning_sanity.checks.label_use import unused_head_classes
from lightning_sanity.checks.padding_labels import PaddingLabels, model_padding_token, report_padding_labels
from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)

#: First operations on the input that put it on a sane scale inside the model (``x / 255``, ``(x - mean) / std``,
#: an input BatchNorm / LayerNorm, a log transform): then the raw scale of the batch is no bug.
_NORMALISING_OPS = frozenset({
    "div", "__truediv__", "true_divide", "divide", "__itruediv__", "div_", "sub", "__sub__", "subtract",
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "normalize", "log", "log1p", "log_", "log1p_",
    "rms_norm", "tanh", "sigmoid",
})
_MAX_FIELDS = 8
#: Dense targets (segmentation masks, token sequences) beyond this many elements are summarised by min and max only.
_MAX_LABELS = 1 << 18


class DataChecks(SanityCallback):
    r"""Check the inputs and the labels of the first training batches.

    - ``input-scale``: NaN or Inf in the inputs (error); inputs far from unit scale, such as raw 0..255 pixels or
      features with a spread in the hundreds (warning; only ``info`` when the model rescales its input first, e.g.
      ``x / 255`` or an input BatchNorm); every sample of a batch identical (error); features that never change
      (``info`` only: constant border pixels and unused one-hot columns are normal). Integer inputs (token ids) are
      not judged on scale.
    - ``label-distribution``: all labels equal (error); labels out of range for the model's output width (error);
      batches that each hold (nearly) one class while the data hold several: sorted data, not shuffled (warning);
      identical inputs carrying different labels (warning when they are a sizeable share); heavy imbalance
      (warning with the bias advice when the model's initial prediction ignores it, ``info`` when the output bias
      or the loss weights already account for it). Regression targets only get the all-equal check.

    The batch's input and target come from :func:`lightning_sanity.batch.split_batch`. Cost: for the first
    ``data_batches`` batches, a few reductions and one device-to-host copy per batch; nothing afterwards. Output
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
        self._inputs: dict[str, D.InputStats] = {}
        self._integer_fields: set[str] = set()
        self._first_use: dict[str, str] = {}
        self._labels: list[torch.Tensor] = []  # per batch, on the CPU
        self._label_range: list[tuple[float, float]] = []
        self._dense_labels = False
        self._float_labels = False
        self._prints: list[torch.Tensor] = []
        self._print_features = 0
        self._target_field: Optional[str] = None
        self._pad_id: Optional[int] = None
        self._no_input: Optional[str] = None
        self._no_target: Optional[str] = None
        self._watch: Optional[StepWatch] = None
        self._padding: Optional[PaddingLabels] = None

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._stop_watch()
        self._reset()
        self._padding = PaddingLabels(model_padding_token(pl_module))  # checks/padding_labels.py

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if self._done:  # the batches are judged: nothing left to do per batch
            self.retire("on_train_batch_start", "on_before_backward", "on_train_batch_end")
            return
        if self._seen >= self.data_batches:
            return
        try:
            self._observe(batch)
        except Exception as err:  # nothing may lose the user's run
            log.warning("lightning_sanity: the data checks could not read a batch: %r", err)
            self._no_input = self._no_target = f"could not read the batch: {err!r}"
            self._done = True

    @override
    def on_before_backward(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: torch.Tensor) -> None:
        self._stop_watch()

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: STEP_OUTPUT,
                           batch: Any, batch_idx: int) -> None:
        self._stop_watch()
        if not self._done and self._seen >= self.data_batches:
            self._judge(trainer)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self._done and self._seen:
            self._judge(trainer)  # fewer batches in the epoch than `data_batches`

    @override
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self._stop_watch()

    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._stop_watch()
        if not self._done:
            if self._seen:
                self._judge(trainer)
            elif not (self._no_input or self._no_target):
                self._no_input = self._no_target = "no training batch was seen"
        if self._no_input and not self._inputs:
            self.skip(trainer, "input-scale", self._no_input)
        if self._no_target and not self._labels and not self._label_range:
            self.skip(trainer, "label-distribution", self._no_target)

    def _stop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()

    # ------------------------------------------------------------------ collecting

    def _observe(self, batch: Any) -> None:
        x, y = split_batch(batch, self.get_input, self.get_target)
        self._seen += 1
        fields = self._input_fields(x, self._input_name(batch))
        if not fields:
            self._no_input = ("the batch's input was not found or holds no tensor; pass `get_input=` "
                              "(a function batch -> input)")
        for name, tensor in fields:
            if not (tensor.is_floating_point() or tensor.is_complex()):
                self._integer_fields.add(name)  # token ids, indices, masks: their scale means nothing
                continue
            if tensor.is_complex() or tensor.dim() == 0:
                continue
            self._inputs.setdefault(name, D.InputStats()).add(tensor)
        if self._pad_id is None:
            self._pad_id = D.padding_token(batch)
        if not isinstance(y, torch.Tensor) or y.dim() == 0:
            self._no_target = ("the batch's target was not found; pass `get_target=` (a function batch -> target)"
                               if y is None else f"the target is a {type(y).__name__}, not a tensor")
        else:
            self._target_field = self._target_name(batch)
            self._collect_labels(y, fields)
            if self._padding is not None:
                self._padding.add_batch(batch, x, y)
        if self._seen == 1 and self._inputs:
            self._watch_first_use(fields)  # last: nothing of ours may pass for the model's first use

    def _collect_labels(self, y: torch.Tensor, fields: list[tuple[str, torch.Tensor]]) -> None:
        y = y.detach()
        self._float_labels = self._float_labels or y.is_floating_point()
        if y.numel() > _MAX_LABELS:
            self._dense_labels = True
            packed = torch.stack([y.min().double(), y.max().double()]).cpu()
            self._label_range.append((float(packed[0]), float(packed[1])))
            return
        per_sample = y.dim() == 1 or (y.dim() == 2 and y.shape[1] == 1)
        self._dense_labels = self._dense_labels or not per_sample
        # Fingerprints of the inputs travel with the labels, in one copy to the host.
        main = next((t for _, t in fields if t.dim() > 0 and t.shape[0] == y.shape[0]), None)
        if per_sample and main is not None and main.dim() >= 1:
            prints = D.fingerprints(main)
            self._print_features = int(main[0].numel()) if main.dim() > 1 else 1
            packed = torch.cat([y.reshape(-1).to(prints.dtype), prints.reshape(-1)]).cpu()
            n = y.shape[0]
            self._labels.append(packed[:n].to(torch.float64))
            self._prints.append(packed[n:].reshape(n, 2))
        else:
            self._labels.append(y.reshape(-1).to(torch.float64).cpu())

    def _watch_first_use(self, fields: list[tuple[str, torch.Tensor]]) -> None:
        """Watch the first training step for what the model does first with each float input."""
        tensors = {name: t for name, t in fields if name in self._inputs}

        def before(func: Any, args: tuple, kwargs: dict) -> None:
            name = function_name(func)
            if name in SHAPE_OPS or name in META_OPS:
                return
            for arg in args:
                tag = watch.tags.get(arg)
                if tag and "input" in tag and tag["input"] not in self._first_use:
                    self._first_use[tag["input"]] = name

        watch = StepWatch(before=before)
        for name, tensor in tensors.items():
            watch.tags.set(tensor, {"input": name})
        self._watch = watch.start()

    # ------------------------------------------------------------------ naming the fields

    def _input_name(self, batch: Any) -> str:
        if self.get_input is not None:
            return "get_input(batch)"
        if isinstance(batch, Mapping):
            return next((k for k in INPUT_KEYS if k in batch), "input")
        if isinstance(batch, Sequence) and not isinstance(batch, str):
            return "batch[0]"
        return "batch"

    def _target_name(self, batch: Any) -> str:
        if self.get_target is not None:
            return "get_target(batch)"
        if isinstance(batch, Mapping):
            return next((k for k in TARGET_KEYS if k in batch), "target")
        return "batch[1]"

    @staticmethod
    def _input_fields(x: Any, name: str) -> list[tuple[str, torch.Tensor]]:
        if isinstance(x, torch.Tensor):
            return [(name, x)]
        if isinstance(x, Mapping):
            items = [(f"{name}[{k!r}]", v) for k, v in x.items()]
        elif isinstance(x, Sequence) and not isinstance(x, str):
            items = [(f"{name}[{i}]", v) for i, v in enumerate(x)]
        else:
            return []
        return [(n, v) for n, v in items if isinstance(v, torch.Tensor)][:_MAX_FIELDS]

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
            self._judge_labels(trainer)
        except Exception as err:
            log.warning("lightning_sanity: the label-distribution check failed: %r", err)
            self.skip(trainer, "label-distribution", f"internal error: {err!r}")

    def _judge_inputs(self, trainer: "pl.Trainer") -> None:
        if not self._inputs:
            if self._integer_fields:
                self.detail(trainer, "input-scale", "integer inputs (token ids or indices): scale not judged")
            return
        details = []
        for name, s in self._inputs.items():
            figures = {"rms": round(s.rms, 4), "mean": round(s.mean, 4), "std": round(s.std, 4),
                       "abs_max": round(s.abs_max, 4), "samples": s.samples, "batches": s.batches}
            if s.max_feature_rms is not None:
                figures.update(features=s.features, max_feature_rms=round(s.max_feature_rms, 4),
                               max_feature_std=round(s.max_feature_std or 0.0, 4),
                               constant_features=s.constant_features)
            details.append(f"{name}: rms {s.rms:.3g}, max |x| {s.abs_max:.3g}")
            if s.nonfinite:
                self.report(
                    trainer, "input-scale", Severity.ERROR,
                    f"The input `{name}` holds {s.nonfinite} NaN/Inf values out of {s.values} in the first "
                    f"{s.batches} batches.",
                    "Clean or impute the data (e.g. `torch.nan_to_num`, drop the rows) before it reaches the model; "
                    "check divisions by zero and log of zero in the preprocessing.",
                    where=name, at_step=False, data={**figures, "nonfinite": s.nonfinite})
            # Only the main input: a secondary float field (a mask of ones, a per-batch scalar) may be constant.
            if (s.multi_sample_batches and s.identical_batches == s.multi_sample_batches
                    and (len(self._inputs) == 1 or all(o.identical_batches == o.multi_sample_batches
                                                       for o in self._inputs.values()))):
                self.report(
                    trainer, "input-scale", Severity.ERROR,
                    f"Every sample of the input `{name}` is identical within each of the first {s.batches} batches, "
                    "so the model cannot tell the samples apart.",
                    "Check the dataset's __getitem__ (an index that is ignored, a tensor expanded or repeated "
                    "instead of stacked) and the collate function.",
                    where=name, at_step=False, data=figures)
                continue
            limits = {n: self.threshold("input-scale", n) for n in ("rms_large", "feature_rms_large", "max_small")}
            verdict = D.scale_verdict(s, **limits)
            first = self._first_use.get(name)
            if verdict == "large":
                rescaled = first in _NORMALISING_OPS
                feature_text = (f", one feature reaching an RMS of {s.max_feature_rms:.3g}"
                                if s.max_feature_rms is not None and s.max_feature_rms > limits["feature_rms_large"]
                                else "")
                self.report(
                    trainer, "input-scale", Severity.INFO if rescaled else Severity.WARNING,
                    f"The input `{name}` is far from unit scale: RMS {s.rms:.3g}, mean {s.mean:.3g}, std {s.std:.3g}, "
                    f"max |x| {s.abs_max:.3g}{feature_text}"
                    + (f" (the model rescales it first with `{first}`)." if rescaled else "."),
                    "Standardise the inputs (subtract the mean and divide by the std of the training set, per "
                    "feature or channel), or scale raw pixels to [0, 1] (divide by 255).",
                    where=name, at_step=False, data={**figures, **({"first_op": first} if first else {})})
            elif verdict == "small":
                self.report(
                    trainer, "input-scale", Severity.WARNING,
                    f"The input `{name}` is tiny: its largest magnitude is {s.abs_max:.3g}, so the first layer sees "
                    "almost nothing (scaled twice, e.g. divided by 255 twice?).",
                    "Scale the inputs once, to unit variance or to [0, 1].",
                    where=name, at_step=False, data=figures)
            constant = s.constant_features
            if constant and s.features and s.samples >= 16:
                self.report(
                    trainer, "input-scale", Severity.INFO,
                    f"{constant} of the {s.features} features of `{name}` never changed over the first {s.samples} "
                    "samples (normal for image borders or unused one-hot columns).",
                    "If these features should vary, check the preprocessing; otherwise nothing to do.",
                    where=name, at_step=False, data=figures, key="constant-features")
        self.detail(trainer, "input-scale", "; ".join(details))

    @staticmethod
    def _label_facts(facts: dict[str, Any]) -> dict[str, Any]:
        """The loss inspector's figures, when its loss call compares with the batch's target; else nothing.

        A loss against a target the step made itself (a GAN's ``torch.ones_like(...)``, one-hot or shifted targets)
        says nothing about the batch's labels: then they are judged from the data alone.
        """
        return facts if facts.get("loss_target_is_batch_target") is True else {}

    def _label_kind(self, facts: dict[str, Any], labels: torch.Tensor) -> str:
        kind = self._label_facts(facts).get("loss_kind")
        if kind == "cross_entropy":
            return "class" if not self._float_labels else "soft"
        if kind == "binary_cross_entropy":
            return "binary"
        if kind in ("mse", "l1", "huber", "gaussian_likelihood"):
            return "regression"
        if kind == "kl_div":
            return "soft"
        if not self._float_labels:
            return "class"
        if labels.numel() and bool(((labels == 0) | (labels == 1)).all()):
            return "binary"
        return "regression"

    def _judge_labels(self, trainer: "pl.Trainer") -> None:
        if not self._labels and not self._label_range:
            return
        all_facts = self.collector(trainer).facts
        # A recognised loss that compares with something else: the batch's labels may be unused (a GAN's digit
        # labels), so what they look like is only worth knowing.
        unused = "loss_kind" in all_facts and all_facts.get("loss_target_is_batch_target") is not True
        facts = self._label_facts(all_facts)
        where = self._target_field
        all_labels = torch.cat(self._labels) if self._labels else torch.zeros(0, dtype=torch.float64)
        kind = self._label_kind(facts, all_labels)
        ignore = facts.get("ignore_index", -100)
        if kind in ("class",):
            all_labels = all_labels[all_labels != ignore]
        mins = ([float(all_labels.min())] if all_labels.numel() else []) + [r[0] for r in self._label_range]
        maxs = ([float(all_labels.max())] if all_labels.numel() else []) + [r[1] for r in self._label_range]
        if not mins:
            return
        lo, hi = min(mins), max(maxs)
        samples = sum(int(t.numel()) for t in self._labels)
        batches = len(self._labels) + len(self._label_range)
        summary = {"batches": batches, "label_min": lo, "label_max": hi, "kind": kind}

        if batches >= 2 and lo == hi and (samples >= 16 or self._label_range):
            padding = self._pad_id is not None and lo == self._pad_id
            self.report(
                trainer, "label-distribution", Severity.INFO if unused else Severity.ERROR,
                f"Every target in the first {batches} batches equals {lo:.6g}"
                + (", the padding token (`input_ids` where `attention_mask` is 0): the label mask keeps only padding"
                   if padding else ": nothing to learn (or the data are sorted by label and not shuffled)")
                + ("; the recognised loss compares with another target, so they may be unused." if unused else "."),
                "Check how the labels are read (a constant, a wrong column) and shuffle the training data "
                "(`DataLoader(..., shuffle=True)`).",
                where=where, at_step=False, data=summary)
            self.detail(trainer, "label-distribution", f"all {batches} batches hold the single target {lo:.6g}")
            return
        if kind == "class":
            report_padding_labels(self, trainer, self._padding, facts, where)
        if kind in ("regression", "soft"):
            self.detail(trainer, "label-distribution", f"{kind} targets in [{lo:.4g}, {hi:.4g}]: class checks skipped")
            return
        if kind == "binary" and (lo < 0 or hi > 1):
            self.report(
                trainer, "label-distribution", Severity.ERROR,
                f"Binary targets range from {lo:.4g} to {hi:.4g}; they must lie in [0, 1].",
                "Map the labels to 0 and 1, or use cross_entropy for more than two classes.",
                where=where, at_step=False, data=summary)
            return
        classes = facts.get("num_classes")
        if kind == "class" and classes is not None and (hi >= classes or lo < 0):
            self.report(
                trainer, "label-distribution", Severity.ERROR,
                f"Labels range from {lo:.0f} to {hi:.0f}, but the model predicts {classes} classes (0..{classes - 1}).",
                f"Widen the last layer to at least {int(hi) + 1} outputs or remap the labels to 0..C-1.",
                where=where, at_step=False, data={**summary, "num_classes": classes})
            return
        if self._dense_labels or not self._labels or lo < 0:
            self.detail(trainer, "label-distribution", f"targets in [{lo:.4g}, {hi:.4g}]")
            return
        width = int(hi) + 1 if kind == "class" else 2
        if kind == "class" and (all_labels != all_labels.round()).any():
            return
        per_batch = torch.stack([D.label_counts(t[t != ignore] if kind == "class" else t.round(), width)
                                 for t in self._labels])
        counts = per_batch.sum(0)
        sorted_labels = D.looks_sorted(per_batch)
        if sorted_labels:
            # Batches in label order say nothing of the data set's prior: loss-trend falls back to ln C.
            all_facts["labels_sorted"] = True
        else:
            # loss-trend's baseline: the label prior over every label seen here, not one batch's.
            all_facts["label_counts"] = counts.tolist()
        ratio = D.imbalance_ratio(counts)
        present = int((counts > 0).sum())
        self.detail(trainer, "label-distribution",
                    f"{present} classes in {samples} labels; most/least frequent {ratio:.3g}")
        summary.update(classes_seen=present, counts=counts.tolist()[:100], imbalance_ratio=round(ratio, 3),
                       samples=samples)
        if sorted_labels:
            v, chi2, df = D.batch_label_association(per_batch)
            classes_per_batch = [int(c) for c in (per_batch > 0).sum(1).tolist()]
            self.report(
                trainer, "label-distribution", Severity.WARNING,
                f"The first {batches} batches hold {classes_per_batch} distinct classes each, out of {present} "
                f"seen: the training data are ordered by label, not shuffled (Cramér's V {v:.2f}).",
                "Shuffle the training data: `DataLoader(..., shuffle=True)` (or a shuffling sampler).",
                where=where, at_step=False, data={**summary, "classes_per_batch": classes_per_batch,
                                                  "cramers_v": round(v, 3)})
        self._judge_duplicates(trainer, where, samples)
        if kind == "class" and not sorted_labels:
            self._judge_head_width(trainer, facts, counts, where, summary)
        if (D.heavy_imbalance(counts, self.threshold("label-distribution", "imbalance_ratio"))
                and (kind == "binary" or width <= 100)):
            self._report_imbalance(trainer, facts, kind, counts, where, summary)

    def _judge_duplicates(self, trainer: "pl.Trainer", where: Optional[str], samples: int) -> None:
        if not self._prints or len(self._prints) != len(self._labels):
            return
        groups, involved = D.conflicting_duplicates(torch.cat(self._prints), torch.cat(self._labels))
        if not groups:
            return
        share = involved / max(samples, 1)
        # A handful of conflicting duplicates is label noise, worth knowing; a sizeable share means the inputs and
        # labels are not paired correctly, and half or more leaves nothing consistent to learn. Inputs of a few
        # discrete features (tabular data) repeat with different outcomes by nature: only info there.
        rich = self._print_features >= D.RICH_INPUT_FEATURES
        severity = (Severity.INFO if not rich else Severity.ERROR if share >= 0.5
                    else Severity.WARNING if share >= 0.05 and groups >= 2 else Severity.INFO)
        self.report(
            trainer, "label-distribution", severity,
            f"{groups} groups of identical inputs carry different labels ({involved} of {samples} samples, "
            f"{share:.0%}) in the first batches.",
            "Check that inputs and labels are paired correctly (same index, same order after any shuffle or "
            "filter), and deduplicate or relabel the conflicting samples.",
            where=where, at_step=False, data={"groups": groups, "samples": involved, "share": round(share, 4)})

    def _judge_head_width(self, trainer: "pl.Trainer", facts: dict[str, Any], counts: torch.Tensor,
                          where: Optional[str], summary: dict[str, Any]) -> None:
        classes = facts.get("num_classes")
        if not isinstance(classes, int) or classes > 100:
            return  # a vocabulary: tokens that never occur in a corpus are normal
        smoothing = float(facts.get("label_smoothing") or 0.0)
        unused = unused_head_classes(counts.tolist(), classes, smoothing)
        if unused is None:
            return
        cost = (f"; with label_smoothing={smoothing:g}, {unused['smoothing_mass_on_unused']:.2%} of every target's "
                "mass goes to classes that never occur, which raises the loss floor and biases the probabilities"
                if smoothing else "; the extra logits are only pushed down, so training itself works")
        self.report(
            trainer, "label-distribution", Severity.WARNING if smoothing else Severity.INFO,
            f"The head predicts {classes} classes but {unused['labels']} labels use only {unused['classes_used']} of "
            f"them ({unused['unused']} never occur: {unused['unused_classes'][:10]}){cost}.",
            f"Make the last layer as wide as the classes the labels use ({unused['classes_used']}) or check "
            "`num_classes` and the label mapping" + ("; smoothing then spreads over real classes only." if smoothing
                                                      else "."),
            where=where, at_step=False, data={**summary, **unused}, key="head-width")

    def _report_imbalance(self, trainer: "pl.Trainer", facts: dict[str, Any], kind: str, counts: torch.Tensor,
                          where: Optional[str], summary: dict[str, Any]) -> None:
        matches = facts.get("init_matches_prior")
        module = facts.get("output_module")
        bias_param = f"`{module}.bias`" if module else "the last layer's bias"
        if kind == "binary":
            rate = float(counts[1] / counts.sum())
            bias_text = f"{D.logit_bias(rate)} (log(p / (1 - p)) for a positive rate of {rate:.3g})"
            data = {**summary, "positive_rate": round(rate, 4), "best_bias": [D.logit_bias(rate)]}
        else:
            bias = D.log_prior_bias(counts)
            bias_text = f"the log class frequencies {bias[:10]}{' ...' if len(bias) > 10 else ''}"
            data = {**summary, "best_bias": bias}
        share = counts.max().item() / counts.sum().item()
        if facts.get("loss_class_weighted"):
            self.report(
                trainer, "label-distribution", Severity.INFO,
                f"The labels are imbalanced (most/least frequent {summary['imbalance_ratio']:.3g}, majority share "
                f"{share:.0%}); the loss weighs the classes, which handles it.",
                "Nothing to do; watch per-class metrics (balanced accuracy), not only accuracy.",
                where=where, at_step=False, data={**data, "loss_class_weighted": True})
            return
        if matches:
            self.report(
                trainer, "label-distribution", Severity.INFO,
                f"The labels are imbalanced (most/least frequent {summary['imbalance_ratio']:.3g}, majority share "
                f"{share:.0%}); the model's initial prediction already follows the label prior.",
                "Nothing to do; watch per-class metrics, not only accuracy.", where=where, at_step=False, data=data)
            return
        known = matches is not None
        self.report(
            trainer, "label-distribution", Severity.WARNING if known else Severity.INFO,
            f"The labels are heavily imbalanced (most/least frequent {summary['imbalance_ratio']:.3g}, majority share "
            f"{share:.0%})" + (", and the model starts from a uniform prediction." if known else "."),
            f"Set {bias_param} to {bias_text} so training starts from the prior instead of spending its first "
            "steps learning it; or weight the loss by inverse class frequency, or resample.",
            where=where, at_step=False, data=data)

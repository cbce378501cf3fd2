"""``input-scale`` glue: NaN/Inf, identical samples, inputs far from unit scale or tiny, constant features, and
inputs on another scale than the statistics of frozen pretrained layers (kind ``frozen-statistics``).

Mixed into :class:`~lightning_sanity.callbacks.data_checks.DataChecks`, which calls :meth:`_judge_inputs` once the
first batches are read; the statistics and the verdict are in :mod:`lightning_sanity.checks.data`.

``frozen-statistics`` looks at the first training batch only: DataChecks calls :meth:`_watch_frozen_statistics` at
its start and :meth:`_judge_frozen_statistics` at its end. The per-channel spread of the input of the first
BatchNorm that runs in eval mode with learned running statistics is judged against those statistics
(:mod:`lightning_sanity.checks.pretrained_input`). Cost: forward hooks on the candidate BatchNorms for that one
batch; the first to run computes a per-channel standard deviation of its input under ``no_grad``; the hooks are
removed and the figures read once (one host read) at that batch's end.

Example::

    >>> FrozenStatistics().started
    False
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn

from lightning_sanity.callbacks._compiled import hookable_modules
from lightning_sanity.callbacks._step_watch import weight_owners
from lightning_sanity.checks import data as D
from lightning_sanity.checks import heavy_tail as HT
from lightning_sanity.checks import mixed_scale as MS
from lightning_sanity.checks import pretrained_input as PI
from lightning_sanity.checks.modes import has_initial_statistics, is_batchnorm
from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)

#: First operations on the input that put it on a sane scale inside the model (``x / 255``, ``(x - mean) / std``,
#: an input BatchNorm / LayerNorm, a log transform): then the raw scale of the batch is no bug.
_NORMALISING_OPS = frozenset({
    "div", "__truediv__", "true_divide", "divide", "__itruediv__", "div_", "sub", "__sub__", "subtract",
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "normalize", "log", "log1p", "log_", "log1p_",
    "rms_norm", "tanh", "sigmoid",
})

#: First uses that treat an integer input as ids (a lookup), not as values.
_INDEXING_OPS = frozenset({"embedding", "embedding_bag", "one_hot", "index_select", "gather", "take"})


class FrozenStatistics:
    """Forward hooks on the eval-mode BatchNorms with learned running statistics, for the first training batch.

    Only BatchNorms that normalise with their running statistics during training and whose statistics were learned
    (loaded or accumulated, not the initial 0/1) are candidates; the first one the forward pass reaches is judged,
    so a new head being trained downstream cannot cause it.
    """

    def __init__(self) -> None:
        self.started = False  # the first training batch of the fit has begun
        self.hooks: list[Any] = []
        self.seen: Any = None  # (layer name, batch std, running std), from the first candidate to run

    def attach(self, pl_module: "pl.LightningModule") -> None:
        try:
            for name, module in hookable_modules(pl_module):
                if (is_batchnorm(module) and not module.training and getattr(module, "running_var", None) is not None
                        and not has_initial_statistics(module)):
                    self.hooks.append(module.register_forward_hook(self._hook(name)))
        except Exception:  # never lose the run over a diagnostic
            log.debug("pretrained input hooks failed", exc_info=True)

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self.seen is not None or module.training or not args or not isinstance(args[0], torch.Tensor):
                return
            try:
                with torch.no_grad():
                    x = args[0].detach().float()
                    dims = [0] + list(range(2, x.dim()))
                    self.seen = (name, x.var(dims).sqrt(), (module.running_var.float() + module.eps).sqrt())
            except Exception:  # never lose the run over a diagnostic
                log.debug("pretrained input statistics failed", exc_info=True)
        return hook

    def remove(self) -> None:
        for handle in self.hooks:
            handle.remove()
        self.hooks = []


class _InputScaleGlue:
    """The ``input-scale`` findings of :class:`~lightning_sanity.callbacks.data_checks.DataChecks`."""

    def _watch_frozen_statistics(self, pl_module: "pl.LightningModule") -> None:
        """At the start of the fit's first training batch: hook the candidate BatchNorms (once per fit)."""
        if self._frozen.started:
            return
        self._frozen.started = True
        if self.is_enabled("input-scale"):
            self._frozen.attach(pl_module)

    def _judge_frozen_statistics(self, trainer: "pl.Trainer") -> None:
        """At the end of that batch: remove the hooks and judge what the first candidate saw."""
        frozen = self._frozen
        if not frozen.hooks:
            return
        frozen.remove()
        if frozen.seen is None:
            return
        name, batch_std, running_std = frozen.seen
        try:
            verdict = PI.judge_statistics(batch_std.cpu(), running_std.cpu(), name)
        except Exception:  # never lose the run over a diagnostic
            log.debug("pretrained input judgement failed", exc_info=True)
            return
        if verdict is None:
            return
        wider = "wider" if verdict["ratio"] > 1 else "narrower"
        factor = verdict["ratio"] if verdict["ratio"] > 1 else 1 / verdict["ratio"]
        self.report(
            trainer, "input-scale", Severity.WARNING,
            f"The inputs are not on the scale the frozen pretrained layers expect: at `{name}` (eval mode, learned "
            f"running statistics) the pre-activations of the first batch are {factor:.1f}x {wider} than the "
            "statistics it was trained with (median over channels): the frozen layers pass distorted features on.",
            "Apply the normalisation the weights were pretrained with (the same mean/std, the same 0..1 or 0..255 "
            "pixel range) to every split's inputs; a `transforms.Normalize` left in the pretraining code is the "
            "usual cause.",
            where=name, data=verdict, key="frozen-statistics",
        )

    def _judge_inputs(self, trainer: "pl.Trainer") -> None:
        large = self._judge_fields(trainer)
        first, self._inputs.first_layer = self._inputs.first_layer, None
        if first is not None and not large:  # a batch field already far from unit scale explains the first layer
            self._judge_first_layer(trainer, *first)

    def _judge_first_layer(self, trainer: "pl.Trainer", op: str, weight: Any, rms: torch.Tensor) -> None:
        """One feature of the first weighted layer's input far above the others (checks/mixed_scale.py)."""
        verdict = MS.mixed_scale(rms.cpu())
        if verdict is None:
            return
        layer = weight_owners(trainer.lightning_module).get(id(weight), op) if weight is not None else op
        others = verdict["large_features"] - 1
        self.report(
            trainer, "input-scale", Severity.WARNING,
            f"The first layer `{layer}` gets inputs on very different scales: feature {verdict['max_feature']} of its "
            f"{verdict['width']} has an RMS of {verdict['max_rms']:.3g}, {verdict['ratio']:.0f}x the typical "
            f"feature's {verdict['typical_rms']:.3g}" + (f" ({others} more features like it)" if others else "")
            + ". It dominates every pre-activation and the other features barely count.",
            "Scale that feature before it enters the layer: divide a timestep or position by its range, use time "
            "gaps (or their log) instead of raw timestamps, standardise each column with training-set statistics.",
            where=layer, at_step=False, data=verdict, key="mixed-scale")

    def _judge_fields(self, trainer: "pl.Trainer") -> bool:
        """The batch's own fields; True when one of them was found far from unit scale."""
        large = False
        if not self._inputs.stats:
            if self._inputs.integer_fields:
                self.detail(trainer, "input-scale", "integer inputs (token ids or indices): scale not judged")
            return large
        details = []
        for name, s in self._inputs.stats.items():
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
                    and (len(self._inputs.stats) == 1 or all(o.identical_batches == o.multi_sample_batches
                                                       for o in self._inputs.stats.values()))):
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
            first = self._inputs.first_use.get(name)
            if name in self._inputs.signal_fields and first in _INDEXING_OPS:
                details[-1] = f"{name}: integer ids (first used by `{first}`): scale not judged"
                continue  # 8/16-bit ids after all: looked up, not computed with
            # A heavy tail is judged where the raw scale is large and the model takes no log of it (`logged`).
            heavy = (HT.heavy_tail(s.min, s.positives, s.squashed)
                     if verdict == "large" and name not in self._inputs.logged else None)
            rescaled = first in _NORMALISING_OPS or name in self._inputs.logged
            # A warned field explains the first layer's scale; one the model rescales first does not.
            large = large or heavy is not None or (verdict == "large" and not rescaled)
            if heavy is not None:
                self._report_heavy_tail(trainer, name, s, heavy, first, figures)
            elif verdict == "large":
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
        return large

    def _report_heavy_tail(self, trainer: "pl.Trainer", name: str, s: D.InputStats, heavy: dict, first: Any,
                           figures: dict) -> None:
        """Far from unit scale and heavy-tailed (:mod:`lightning_sanity.checks.heavy_tail`): a linear rescaling, even
        the model's own, leaves most values squashed near zero."""
        rescaled = f" The model's own `{first}` does not change that." if first in _NORMALISING_OPS else ""
        self.report(
            trainer, "input-scale", Severity.WARNING,
            f"The input `{name}` is far from unit scale (RMS {s.rms:.3g}, max |x| {s.abs_max:.3g}) and heavy-tailed: "
            f"in {heavy['heavy_features']} of its {heavy['judged_features']} non-negative features most positive "
            "values lie below 1/100 of the feature's standard deviation, two or more orders of magnitude under the "
            f"largest ({heavy['squashed_share']:.0%} of their positive values), so after any division by the spread "
            f"they are all but zero to the first layer.{rescaled}",
            "Take the log of such features (`torch.log(x + eps)`, `log1p` for counts, dB for power spectrograms: "
            "`AmplitudeToDB`), then standardise.",
            where=name, at_step=False, data={**figures, **heavy, **({"first_op": first} if first else {})},
            key="heavy-tail")

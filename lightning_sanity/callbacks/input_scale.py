"""``input-scale`` glue: NaN/Inf, identical samples, inputs far from unit scale or tiny, constant features.

Mixed into :class:`~lightning_sanity.callbacks.data_checks.DataChecks`, which calls :meth:`_judge_inputs` once the
first batches are read; the statistics and the verdict are in :mod:`lightning_sanity.checks.data`.
"""

from __future__ import annotations

import lightning.pytorch as pl

from lightning_sanity.checks import data as D
from lightning_sanity.findings import Severity

#: First operations on the input that put it on a sane scale inside the model (``x / 255``, ``(x - mean) / std``,
#: an input BatchNorm / LayerNorm, a log transform): then the raw scale of the batch is no bug.
_NORMALISING_OPS = frozenset({
    "div", "__truediv__", "true_divide", "divide", "__itruediv__", "div_", "sub", "__sub__", "subtract",
    "batch_norm", "layer_norm", "group_norm", "instance_norm", "normalize", "log", "log1p", "log_", "log1p_",
    "rms_norm", "tanh", "sigmoid",
})


class _InputScaleGlue:
    """The ``input-scale`` findings of :class:`~lightning_sanity.callbacks.data_checks.DataChecks`."""

    def _judge_inputs(self, trainer: "pl.Trainer") -> None:
        if not self._inputs.stats:
            if self._inputs.integer_fields:
                self.detail(trainer, "input-scale", "integer inputs (token ids or indices): scale not judged")
            return
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

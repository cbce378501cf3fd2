"""Validation against training: the ``val-divergence`` judgement, as a pure function of the two loss histories.

Example::

    >>> v = judge_val_divergence(train=[1.0, 0.3, 0.05], val=[1.6, 2.5, 3.4], baseline=1.1)
    >>> v.kind, v.severity
    ('worse-than-baseline', 'error')
    >>> judge_val_divergence(train=[1.0, 0.5, 0.3], val=[0.9, 0.6, 0.45], baseline=1.1) is None
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

from lightning_sanity.checks.val_noise import STANDARD_ERRORS, ValNoise, valid_samples

#: The validation loss must stay this fraction above the input-independent baseline at its best, and the training
#: loss end this fraction below it, for "validation worse than the baseline while training learns": the same
#: margin loss-trend uses to say a loss beat the baseline.
BASELINE_MARGIN = 0.2
#: A validation loss that ends this fraction above its best while training goes on falling is overfitting.
RISE = 0.25
#: ``never-beats-baseline`` needs this many validations over the run: one or two looks can all sit early.
MIN_VALIDATIONS = 3
#: Overfitting is a warning instead of info once the validation loss ends this many times above the baseline.
EXTREME = 2.0
#: A validation loss before training within this factor of the first training loss is the same kind of figure.
SCALE_FACTOR = 2.0

#: Logged metric names read as the validation loss, in order of preference; otherwise the shortest name with "val"
#: and one of ``_LOSS_WORDS`` in it.
VAL_LOSS_KEYS = ("val_loss", "val/loss", "validation_loss", "valid_loss", "loss/val", "val_loss_epoch",
                 "validation/loss", "val/loss_epoch")

_LOSS_WORDS = ("loss", "mse", "nll")


@dataclasses.dataclass
class Divergence:
    kind: str  # "worse-than-baseline" or "overfitting"
    severity: str
    message: str
    advice: str
    data: dict[str, Any]


def val_loss_key(metrics: Mapping[str, Any]) -> Optional[str]:
    """The name of the logged validation loss among ``metrics``' keys, or None.

    >>> val_loss_key({"train_loss": 1, "val/loss_epoch": 2, "val_acc": 3})
    'val/loss_epoch'
    """
    for key in VAL_LOSS_KEYS:
        if key in metrics:
            return key
    named = [k for k in metrics if "val" in k.lower() and "train" not in k.lower()
             and any(word in k.lower() for word in _LOSS_WORDS)]
    return min(named, key=len) if named else None


def comparable(before_training: float, initial_loss: float) -> bool:
    """Whether a validation loss before any update and the first training loss are the same kind of figure
    (the same loss function and reduction), so that the training loss's baseline applies to validation.

    >>> comparable(2.31, 2.29), comparable(147.0, 2.3)
    (True, False)
    """
    if not (math.isfinite(before_training) and math.isfinite(initial_loss)) or before_training <= 0 or initial_loss <= 0:
        return False
    return 1 / SCALE_FACTOR <= before_training / initial_loss <= SCALE_FACTOR


def judge_val_divergence(train: Sequence[float], val: Sequence[float], baseline: Optional[float],
                         margin: float = BASELINE_MARGIN, rise: float = RISE,
                         before: Optional[float] = None, val_samples: Optional[float] = None,
                         noise: Optional[ValNoise] = None, complete: bool = True) -> Optional[Divergence]:
    """Judge the validation losses ``val`` (one per validation run after training started) against the mean
    training losses ``train`` over the steps before each, and the input-independent ``baseline`` (or None).

    ``before``: the validation loss before any update. Without a baseline on the validation loss's scale (none
    known, or validation logged on another scale: a sum, another loss), overfitting is extreme when validation
    ends more than ``EXTREME`` times above it: the untrained model stands in for the baseline, and the ratio is the
    same whatever the validation loss is scaled by. ``val_samples``: the validation samples (rows) each loss
    averages, or ``noise``, the full noise model (:mod:`lightning_sanity.checks.val_noise`): "beat" and "worse"
    are then judged beyond that noise; without either, the relative ``margin`` stands in for it. ``complete``: the
    run ended on its own (the whole planned run was validated), for ``never-beats-baseline``.

    >>> judge_val_divergence([0.76, 0.5, 0.3, 0.16], [322, 35, 300, 792], None, before=81).severity
    'warning'
    >>> judge_val_divergence([1.9, 1.2, 0.8, 0.55], [2.31, 2.31, 2.31, 2.31], 2.30, val_samples=360).kind
    'never-beats-baseline'
    """
    pairs = [(t, v) for t, v in zip(train, val) if math.isfinite(t) and math.isfinite(v)]
    if not pairs:
        return None
    train, val = [t for t, _ in pairs], [v for _, v in pairs]
    best = min(range(len(val)), key=val.__getitem__)
    data = {"val_losses": [round(v, 6) for v in val[-20:]], "train_losses": [round(t, 6) for t in train[-20:]],
            "baseline": baseline, "best_val": val[best], "validations": len(val)}
    if noise is None and valid_samples(val_samples):
        noise = ValNoise(int(val_samples))
    if baseline is not None and baseline > 0:
        trained = train[-1] < baseline * (1 - margin)
        beaten = beat_baseline(val, baseline, noise, margin)
        if noise is None:  # no sample count: the relative margin stands in for the noise
            never_near = val[best] > baseline * (1 + margin)
            ended_worse = val[-1] > baseline * (1 + margin)
        else:
            data["val_samples"] = noise.samples
            never_near = val[best] > noise.worse_bar(baseline, val[best], margin)
            ended_worse = val[-1] > noise.worse_bar(baseline, val[-1], margin)
        # Validation either never came near the baseline, or never beat it and ended clearly worse: a model that
        # learned something transferable beats the baseline first (healthy overfitting rises after).
        if trained and (never_near or (not beaten and ended_worse)):
            return Divergence(
                "worse-than-baseline", "error",
                (f"The validation loss never got below {val[best]:.3g}, above the {baseline:.3g} of a prediction "
                 "that ignores the input," if never_near else
                 f"The validation loss never clearly beat the {baseline:.3g} of a prediction that ignores the input "
                 f"(best {val[best]:.3g}) and ended above it at {val[-1]:.3g},")
                + f" while the training loss fell to {train[-1]:.3g}: what the model learns from "
                "the training data does not hold on the validation data.",
                "Compare the two splits' labels: the same label encoding and class order (one `LabelEncoder`/class "
                "map fitted once), the same preprocessing and normalisation statistics, targets aligned with their "
                "inputs in both; look for an answer that is readable in training only (a leaked label column, "
                "unshifted targets).",
                data,
            )
        flat = never_beats(train, val, baseline, margin, noise, complete)
        if flat is not None:
            return Divergence(flat.kind, flat.severity, flat.message, flat.advice, {**data, **flat.data})
    after = val[best + 1:]
    # "Training kept falling": it reached a new low after validation's best. Not the last figure alone: a mean of
    # a few noisy steps can sit just above the figure at the best while training goes on learning.
    if len(val) >= 3 and len(after) >= 2 and val[-1] >= val[best] * (1 + rise) and min(train[best + 1:]) < train[best]:
        extreme = baseline is not None and val[-1] > EXTREME * baseline
        untrained = (baseline is None and before is not None and math.isfinite(before) and before > 0
                     and val[best] > 0 and val[-1] > EXTREME * before)
        if untrained:
            data["val_before_training"] = before
        return Divergence(
            "overfitting", "warning" if extreme or untrained else "info",
            f"The validation loss rose from {val[best]:.3g} (validation {best + 1} of {len(val)}) to {val[-1]:.3g} "
            f"while the training loss went on falling (to {min(train[best + 1:]):.3g}): the model overfits"
            + (f", and now does worse than a prediction that ignores the input ({baseline:.3g})." if extreme else
               f", and ends {val[-1] / before:.3g} times above the untrained model's validation loss ({before:.3g}): "
               "what it learns from the training data makes it worse on the validation data." if untrained else "."),
            "Stop at the best validation loss (`EarlyStopping(monitor=...)`, `ModelCheckpoint(monitor=...)`), add "
            "regularisation (weight decay, dropout, augmentation) or more data, or use a smaller model."
            + (" Far worse than untrained also means the validation data may be prepared differently from the "
               "training data: the same feature columns in the same order, one set of normalisation statistics "
               "fitted on training and applied to both, the same label encoding." if untrained else ""),
            data,
        )
    return None


def beat_baseline(val: Sequence[float], baseline: Optional[float], noise: Optional[ValNoise],
                  margin: float = BASELINE_MARGIN) -> bool:
    """Whether some validation loss beat ``baseline`` beyond the noise of ``noise`` (without it: by ``margin``):
    the model learned something that transfers, whatever it does later.

    >>> beat_baseline([0.587, 0.859], 0.693, ValNoise(600, 600, 0.0)), beat_baseline([0.587, 0.859], 0.693, None)
    (True, False)
    """
    finite = [v for v in val if math.isfinite(v)]
    if baseline is None or not baseline > 0 or not finite:
        return False
    return min(finite) < (noise.beat_bar(baseline) if noise is not None else baseline * (1 - margin))


def never_beats(train: Sequence[float], val: Sequence[float], baseline: float, margin: float,
                noise: Optional[ValNoise], complete: bool) -> Optional[Divergence]:
    """``never-beats-baseline``: over the whole run (``complete``, ``MIN_VALIDATIONS`` or more) no validation loss
    got below the baseline beyond its noise, while the training loss ended ``margin`` below the baseline and below
    that noise band. Judged only where the noise band is narrower than ``margin`` x the baseline (a split large
    enough that a model which learned something transferable would have shown it), and never without a sample
    count: a small split or a weak-signal task that dips below the baseline is overfitting, not this.
    Typical causes: validation runs a copy of the model that does not train (an EMA whose decay suits a run 100x
    longer, weights loaded from the initial checkpoint), labels unrelated to the inputs (memorised in training)."""
    if noise is None or not complete or len(val) < MIN_VALIDATIONS:
        return None
    bar = noise.beat_bar(baseline)
    if baseline - bar > margin * baseline or min(val) < bar:
        return None
    if not (train[-1] < baseline * (1 - margin) and train[-1] < bar):
        return None
    return Divergence(
        "never-beats-baseline", "warning",
        f"Over all {len(val)} validations the validation loss never got below {bar:.3g} (best {min(val):.3g}; the "
        f"{baseline:.3g} of a prediction that ignores the input, less {STANDARD_ERRORS:g} standard errors of "
        f"{noise.samples} validation samples), while the training loss fell to {train[-1]:.3g}: the model that is "
        "validated predicts no better than knowing nothing about the inputs.",
        "Check that validation runs the model that trains: an EMA copy (`ModelEmaV2`, `AveragedModel`) whose decay "
        "suits a run far longer than this one (its weights stay near the initialisation: 0.9999^steps), weights "
        "loaded from the wrong checkpoint, a model copied before training; else check that the labels depend on "
        "the inputs the same way in both splits (training may only be memorising).",
        {"beat_bar": round(bar, 6), "val_samples": noise.samples, "complete": complete},
    )

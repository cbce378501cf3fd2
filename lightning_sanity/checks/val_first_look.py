"""Validation that never clearly improves on its first look and ends worse than it, while training falls far: the
baseline-free half of ``val-divergence``.

The validation loss before any update (the sanity check's) is the model at its initialisation, which knows nothing
about the task: it stands in for the input-independent baseline where the loss has none (contrastive, metric
learning, custom losses). A model that learns something that transfers clearly beats it at some validation, even
one that overfits later (validation first improves, then rises: silent here, ``overfitting`` is info). One that
never gets ``margin`` below it and ends ``margin`` above it, while its own training loss fell many times its
step-to-step noise, learns only what does not hold on validation: pairs or labels encoded with another convention,
a feature map rebuilt on one split.

Example::

    >>> v = judge_never_improves(before=0.50, val=[0.55, 0.62, 0.78], train=[0.17, 0.06, 0.04],
    ...                          train_noise=[0.05, 0.01, 0.01])
    >>> v.kind, v.severity
    ('never-improves', 'warning')
    >>> judge_never_improves(before=0.50, val=[0.30, 0.40, 0.45], train=[0.17, 0.06, 0.04],
    ...                      train_noise=[0.05, 0.01, 0.01]) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

from lightning_sanity.checks.validation import Divergence

#: The training loss must fall by this many of its own step-to-step standard deviations (measured over the steps
#: before the last validation) between the first and the last validation for "training falls far": a mean of many
#: steps that moves by 4 single-step deviations is no batch-to-batch noise (a 4-sigma move of even one step has a
#: one-sided chance of 3e-5), it is learning.
NOISE_UNITS = 4.0
#: The same margin as the baseline rule (``validation.BASELINE_MARGIN``): "clearly below" the first look is this
#: fraction below it, "worse" this fraction above it, so the sanity check's few batches (a noisier estimate of the
#: same loss) do not decide.
MARGIN = 0.2
#: At least this many validations after training started: one or two looks can sit above the first by the
#: noise of a small validation set while training has barely begun.
MIN_VALIDATIONS = 3


def judge_never_improves(before: Optional[float], val: Sequence[float], train: Sequence[float],
                         train_noise: Sequence[float], noise_units: float = NOISE_UNITS,
                         margin: float = MARGIN) -> Optional[Divergence]:
    """Whether no validation loss ``val`` (one per validation after training started) got ``margin`` below
    ``before`` (the validation loss before any update, positive) and the last ended ``margin`` above it, while the mean training loss ``train`` fell by more than ``noise_units``
    step-to-step standard deviations ``train_noise`` (of the last interval) from the first to the last validation."""
    if before is None or not math.isfinite(before) or before <= 0 or len(val) < MIN_VALIDATIONS or len(train) != len(val):
        return None
    if not all(math.isfinite(v) for v in val) or not all(math.isfinite(t) for t in train):
        return None
    noise = train_noise[-1] if train_noise and math.isfinite(train_noise[-1]) else math.nan
    drop = train[0] - train[-1]
    if min(val) <= before * (1 - margin) or val[-1] <= before * (1 + margin) or not (noise >= 0 and drop > noise_units * noise and drop > 0):
        return None
    return Divergence(
        "never-improves", "warning",
        f"The validation loss never clearly improved on its value before training ({before:.3g}) and ended "
        f"worse: it went "
        f"{val[0]:.3g} -> {val[-1]:.3g} over {len(val)} validations while the training loss fell from "
        f"{train[0]:.3g} to {train[-1]:.3g} ({drop / max(noise, 1e-12):.0f} times its step-to-step noise "
        f"{noise:.2g}): what the model learns from the training data does not hold on the validation data.",
        "Compare how the two splits are built: the same label convention (1 = same vs 1 = different, class "
        "order), one feature/vocabulary map and one set of normalisation statistics fitted on training and applied "
        "to both, targets aligned with their inputs; look for an answer readable in training only.",
        {"val_before_training": before, "val_losses": [round(v, 6) for v in val[-20:]],
         "train_losses": [round(t, 6) for t in train[-20:]], "train_step_std": noise, "validations": len(val)},
    )

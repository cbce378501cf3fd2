"""``val-divergence``'s ``ends-above-baseline`` pattern: the validation loss ends clearly worse than a prediction that
ignores the input, while the training loss fell well below it.

A model whose last validation loss is above the input-independent baseline (the best constant prediction's loss)
does worse on the validation data than knowing nothing about the inputs: what it learned from the training data
hurts there. Either the validation data is prepared differently (another sampling rate, normalisation, label
encoding), or the model overfits so far that its confident mistakes outweigh what it gets right; both are worth a
warning. "Clearly" is judged against the sampling noise of :class:`~lightning_sanity.checks.val_noise.ValNoise`
(the one noise model of val-divergence): a loss this bad is dominated by confident mistakes and spreads sqrt(2)
times its mean per sample. The last validation must exceed ``baseline * (1 + margin)`` by ``NOISE_UNITS`` standard
errors of its difference from the baseline.

Example::

    >>> v = judge_ends_above_baseline([1.2, 0.4, 0.05], [1.0, 1.4, 2.1], baseline=1.39, samples=720)
    >>> v.kind, v.severity
    ('ends-above-baseline', 'warning')
    >>> judge_ends_above_baseline([0.56, 0.3, 0.24], [0.54, 0.7, 0.83], baseline=0.689, samples=600) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

from lightning_sanity.checks.val_noise import ValNoise, valid_samples
from lightning_sanity.checks.validation import BASELINE_MARGIN, Divergence

#: Standard errors of the validation mean by which the last validation loss must clear ``baseline * (1 + margin)``.
NOISE_UNITS = 3.0


def judge_ends_above_baseline(train: Sequence[float], val: Sequence[float], baseline: Optional[float],
                              samples: Optional[int], margin: float = BASELINE_MARGIN,
                              noise: Optional[ValNoise] = None) -> Optional[Divergence]:
    """The ``ends-above-baseline`` verdict, or None. ``samples``: validation samples per validation run (None or
    0: unknown, the rule does not apply, since its noise cannot be bounded); ``noise``: the full noise model (the
    baseline's own estimation noise included), built from ``samples`` when None."""
    if baseline is None or not baseline > 0 or not valid_samples(samples):
        return None
    noise = noise or ValNoise(int(samples))
    pairs = [(t, v) for t, v in zip(train, val) if math.isfinite(t) and math.isfinite(v)]
    if len(pairs) < 2:
        return None
    last_train, last_val = pairs[-1]
    if not last_train < baseline * (1 - margin):
        return None
    error = noise.worse_error(baseline, last_val)
    bar = noise.worse_bar(baseline, last_val, margin, units=NOISE_UNITS)
    if last_val <= bar:
        return None
    best = min(v for _, v in pairs)
    return Divergence(
        "ends-above-baseline", "warning",
        f"The validation loss ended at {last_val:.3g}, above the {baseline:.3g} of a prediction that ignores the input "
        f"(best {best:.3g}; {samples} validation samples put its noise at about {error:.2g}), while "
        f"the training loss fell to {last_train:.3g}: on the validation data the trained model does worse than "
        "knowing nothing about the inputs.",
        "Check that the validation data goes through the same preprocessing as the training data (sampling rate, "
        "resizing, normalisation statistics, feature order, label encoding); if it does, the model overfits far: "
        "stop at the best validation loss (`EarlyStopping` / `ModelCheckpoint(monitor=...)`) and regularise.",
        {"val_losses": [round(v, 6) for _, v in pairs[-20:]], "train_losses": [round(t, 6) for t, _ in pairs[-20:]],
         "baseline": baseline, "best_val": best, "validations": len(pairs), "val_samples": samples,
         "bar": round(bar, 6)},
    )

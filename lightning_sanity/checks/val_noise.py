"""How far a validation loss can sit from the baseline by chance, for ``val-divergence``'s "never clearly beat the
baseline, ended above it" judgement.

A validation loss is a mean over the validation samples, so it carries their sampling noise: for a squared error
of Gaussian residuals each sample's loss has a spread of sqrt(2) times its mean (a chi-square with one degree of
freedom), so the mean of ``n`` of them is uncertain by a relative ``sqrt(2 / n)``. With a small validation split
(70 patients of sklearn's diabetes set: +-17 % per standard error) a model that beat the baseline by 11 % and then
overfit to 20 % above it has shown neither "beat" nor "worse" beyond that noise: labels that disagree between the
splits are not shown, overfitting may be. Such a run is reported as information, not as an error.

Example::

    >>> within_sampling_noise(best=0.651, last=0.879, baseline=0.732, samples=70)
    True
    >>> within_sampling_noise(best=0.70, last=2.0, baseline=0.732, samples=70)
    False
"""

from __future__ import annotations

import math
from typing import Optional

#: Standard errors of the validation mean within which a difference from the baseline is no evidence (95 %).
STANDARD_ERRORS = 2.0
#: A sample's squared error spreads sqrt(2) times its mean (Gaussian residuals); heavier tails spread more.
SAMPLE_SPREAD = math.sqrt(2.0)


def relative_noise(samples: Optional[float]) -> Optional[float]:
    """``STANDARD_ERRORS`` relative standard errors of a mean loss over ``samples`` validation samples, or None.

    >>> round(relative_noise(70), 3)
    0.338
    """
    if samples is None or not math.isfinite(samples) or samples < 2:
        return None
    return STANDARD_ERRORS * SAMPLE_SPREAD / math.sqrt(samples)


def within_sampling_noise(best: float, last: float, baseline: float, samples: Optional[float]) -> bool:
    """Whether a validation loss that dipped below ``baseline`` (``best``) and ended above it (``last``) is, at its
    end, within the sampling noise of ``samples`` validation samples of the baseline: the model did beat the
    baseline at its best, and its end is not shown to be worse than it. False when the sample count is unknown.
    """
    noise = relative_noise(samples)
    if noise is None or not (0 < best < baseline):
        return False
    return last <= baseline * (1 + noise)


def noise_words(samples: float) -> str:
    """The clause the message ends with, naming the noise."""
    return (f"; with {int(samples)} validation samples a validation loss is uncertain by about "
            f"+-{relative_noise(samples):.0%}, so neither is beyond noise: this looks like overfitting of a small "
            "validation split, not labels that disagree between the splits")

"""How far a validation loss can sit from the input-independent baseline by chance: the one noise model of
``val-divergence``'s baseline rules (``worse-than-baseline``, ``never-beats-baseline``, ``ends-above-baseline``).

A validation loss is a mean over the validation samples, and the baseline a mean over the samples it was estimated
from, so their difference carries the sampling noise of both: ``sqrt(sd_v**2 / n + sd_b**2 / n_b)`` with the
per-sample standard deviations ``sd`` under the hypothesis each rule tests.

- "Did validation beat the baseline?" tests a model that knows nothing about the input. For a proper scoring rule
  (cross-entropy) its expected loss is at least the label prior's entropy, and it is that low only when its
  predictions are the prior: its per-sample loss then spreads as ``-ln p_y`` does over the labels (the prior's
  "varentropy", zero for balanced classes: every sample costs ln C). For a squared error of Gaussian residuals the
  constant prediction's per-sample loss spreads sqrt(2) times its mean (a chi-square with one degree of freedom);
  this is also taken for every other loss (heavier tails spread more, an exponential spreads once its mean).
- "Did validation end worse than the baseline?" tests a model whose confident mistakes dominate its loss: its
  per-sample loss spreads like the squared error's, sqrt(2) times its mean.

Neither needs a margin tuned on a data set: a binary task whose validation loss reaches 0.587 against a baseline of
ln 2 over 600 samples has beaten it (a balanced constant prediction costs ln 2 on every sample), while 70 diabetes
patients leave a regression loss uncertain by +-17 % per standard error, where "never beat" is not shown.

Example::

    >>> noise = ValNoise(samples=600, baseline_spread=prior_spread([300, 300]))
    >>> noise.beat_bar(0.693) > 0.587
    True
    >>> small = ValNoise(samples=70)
    >>> round(small.beat_bar(0.732), 3), round(small.worse_bar(0.732, 0.879, margin=0.2), 3)
    (0.485, 1.176)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Optional

#: Standard errors within which a difference from the baseline is no evidence (two-sided 95 %).
STANDARD_ERRORS = 2.0
#: A sample's squared error spreads sqrt(2) times its mean (Gaussian residuals); heavier tails spread more.
SAMPLE_SPREAD = math.sqrt(2.0)


def prior_spread(counts: Sequence[float]) -> Optional[float]:
    """The per-sample standard deviation of ``-ln p_y`` for labels drawn from the prior ``p`` of ``counts``: how
    widely the best constant prediction's cross-entropy spreads over samples. None without counts.

    >>> prior_spread([50, 50]), round(prior_spread([90, 10]), 3)
    (0.0, 0.659)
    """
    total = float(sum(c for c in counts if c > 0))
    if total <= 0:
        return None
    p = [c / total for c in counts if c > 0]
    entropy = -sum(q * math.log(q) for q in p)
    second = sum(q * math.log(q) ** 2 for q in p)
    return math.sqrt(max(second - entropy * entropy, 0.0))


@dataclasses.dataclass
class ValNoise:
    """The sampling noise of a validation loss against the baseline.

    ``samples``: validation samples (rows) per validation run; ``baseline_samples``: samples the baseline was
    estimated from (None: treated as exact); ``baseline_spread``: the per-sample standard deviation of the best
    constant prediction's loss (None: ``SAMPLE_SPREAD`` times the baseline).
    """

    samples: int
    baseline_samples: Optional[int] = None
    baseline_spread: Optional[float] = None

    def _error(self, spread_val: float, spread_base: float) -> float:
        var = spread_val ** 2 / self.samples
        if self.baseline_samples:
            var += spread_base ** 2 / self.baseline_samples
        return math.sqrt(var)

    def _base_spread(self, baseline: float) -> float:
        return self.baseline_spread if self.baseline_spread is not None else SAMPLE_SPREAD * abs(baseline)

    def beat_error(self, baseline: float) -> float:
        """The standard error of (validation - baseline) for a model that knows nothing about the input."""
        spread = self._base_spread(baseline)
        return self._error(spread, spread)

    def beat_bar(self, baseline: float, units: float = STANDARD_ERRORS) -> float:
        """A validation loss below this has beaten the baseline beyond noise."""
        return baseline - units * self.beat_error(baseline)

    def worse_error(self, baseline: float, level: float) -> float:
        """The standard error of (validation - baseline) for a validation loss at ``level``, dominated by confident
        mistakes."""
        return self._error(SAMPLE_SPREAD * abs(level), self._base_spread(baseline))

    def worse_bar(self, baseline: float, level: float, margin: float, units: float = STANDARD_ERRORS) -> float:
        """A validation loss at ``level`` above this is worse than ``(1 + margin)`` x the baseline beyond noise."""
        return baseline * (1 + margin) + units * self.worse_error(baseline, level)


def valid_samples(samples: Optional[float]) -> bool:
    """Whether a sample count bounds the noise (at least 2 samples)."""
    return samples is not None and math.isfinite(samples) and samples >= 2

"""How many samples a BatchNorm layer normalises over in training mode, and when that is too few.

In training mode BatchNorm normalises every sample with the mean and variance of its batch. Over ``n`` independent
samples the batch mean misses the population mean by ``sigma / sqrt(n)`` (one standard error): at ``n <= 4`` that
is half the feature's spread or more, so what a sample becomes depends on its batch mates as much as on itself
(at ``n = 2`` every feature of a 1x1 map becomes +-1), and the running statistics used at evaluation average these
noisy estimates: the model trains on one normalisation and is evaluated with another. Spatial positions do not
count as samples: they are correlated within an image (GroupNorm's paper, Wu & He 2018, shows BatchNorm's error
rising steeply below 8 images per batch even at 224x224). Gradient accumulation does not help: the optimizer sees
``n x k`` samples, BatchNorm still ``n``. A batch of one is ``train-mode``'s (PyTorch even raises on 2-D inputs).

Example::

    >>> small_batchnorm_batches({"bn1": 2, "bn2": 32, "bn3": 1})
    {'bn1': 2}
    >>> standard_error_share(4)
    0.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping

#: A BatchNorm batch of at most this many samples: the batch mean's standard error is half the spread or more.
MAX_NOISY_SAMPLES = 4


def standard_error_share(samples: int) -> float:
    """The batch mean's standard error over ``samples`` independent samples, as a share of their spread."""
    return 1.0 / math.sqrt(samples)


def small_batchnorm_batches(samples: Mapping[str, int]) -> dict[str, int]:
    """The layers of ``samples`` (name -> samples per training batch) that normalise over 2..4 samples."""
    return {name: n for name, n in samples.items() if 2 <= n <= MAX_NOISY_SAMPLES}

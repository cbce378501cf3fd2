"""Inputs on another scale than a frozen pretrained layer expects: part of ``input-scale``, as a pure function.

A BatchNorm in eval mode whose running statistics were learned (not the initial 0/1) normalises with the mean and
variance of its pre-activations on the data it was (pre)trained on. Data from that distribution, passed through the
same frozen layers, gives a batch whose per-channel standard deviation matches the running one up to sampling
noise; inputs on another scale (raw 0..255 or 0..16 pixels into a backbone pretrained on standardised ones, a
normalisation left in the pretraining code) scale the pre-activations by the same factor, and the frozen layer
passes distorted features on. Judged on the first eval-mode BatchNorm with learned statistics (the one closest to
the input, so the head being trained cannot have caused it), on the first training batch.

Example::

    >>> import torch
    >>> v = judge_statistics(batch_std=torch.full((16,), 7.5), running_std=torch.ones(16), layer="backbone.1")
    >>> v["ratio"] > 4
    True
    >>> judge_statistics(batch_std=torch.full((16,), 1.1), running_std=torch.ones(16), layer="backbone.1") is None
    True
"""

from __future__ import annotations

from typing import Any, Optional

import torch

#: The median over channels of batch std / running std must leave [1/RATIO, RATIO]. Drawn from the data the
#: statistics were measured on, the ratio is 1 up to the sampling error of a batch's std (1/sqrt(2n), a few percent
#: for n of hundreds of values per channel); a change of domain in fine-tuning (other photos, other sensors) moves
#: it by tens of percent. A factor 4 sits far above both and below the factors of a missing normalisation
#: (x 3 for [0, 1] pixels standardised with std 0.3, x 7 for 0..16 digits, x 60+ for 0..255 pixels).
RATIO = 4.0


def judge_statistics(batch_std: torch.Tensor, running_std: torch.Tensor, layer: str,
                     ratio: float = RATIO) -> Optional[dict[str, Any]]:
    """``batch_std`` and ``running_std`` per channel of one frozen BatchNorm; a dict of figures when their median
    ratio leaves ``[1 / ratio, ratio]``, else None."""
    scale = (batch_std.float() / running_std.float().clamp_min(1e-12)).median()
    value = float(scale)
    if 1 / ratio <= value <= ratio or value != value:
        return None
    return {"kind": "frozen-statistics", "layer": layer, "ratio": round(value, 4),
            "batch_std_median": float(batch_std.float().median()),
            "running_std_median": float(running_std.float().median()), "channels": int(batch_std.numel())}

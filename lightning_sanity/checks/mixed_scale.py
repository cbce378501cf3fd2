"""``input-scale`` kind ``mixed-scale``: the first layer's input mixes features on very different scales.

The batch's own fields are judged elsewhere (:mod:`lightning_sanity.checks.data`); this looks at what the model's
first weighted layer (a linear, convolution or recurrent layer, reached before any normalisation layer) actually
receives in the first training step. A raw timestep drawn inside the step, a unix timestamp concatenated to
embeddings, a depth channel in millimetres next to RGB in [0, 1]: one feature far above unit scale while the
typical feature is near it. That feature dominates every pre-activation, and the others barely count.

A first layer whose features are all large is not judged here (an overall scale is the batch check's matter, and a
dB spectrogram computed inside the model is common and works); nor is one whose typical feature carries almost
nothing (sparse counts), where a ratio means little.

Example::

    >>> import torch
    >>> mixed_scale(torch.tensor([1.0, 0.8, 115.0]))["features"]
    [2]
    >>> mixed_scale(torch.tensor([1.0, 0.8, 3.0])) is None
    True
"""

from __future__ import annotations

from typing import Optional

import torch

#: A feature whose RMS is at least this far from unit scale (the batch check's bar for a whole input, data.LARGE_RMS)
LARGE_RMS = 20.0
#: ... and this many times the typical (median) feature's RMS
RATIO = 20.0
#: The typical feature must carry at least this RMS for the ratio to mean something.
TYPICAL_MIN = 0.05


def mixed_scale(rms: torch.Tensor) -> Optional[dict]:
    """Judge a first layer's per-feature RMS (a 1-D host tensor); None when the scales agree."""
    rms = rms.double().flatten()
    if rms.numel() < 2 or not bool(torch.isfinite(rms).all()):
        return None
    typical = float(rms.median())
    if typical < TYPICAL_MIN:
        return None
    large = ((rms >= LARGE_RMS) & (rms >= RATIO * typical)).nonzero().flatten()
    # Most features large is an overall scale, not a mix.
    if not len(large) or 2 * len(large) >= rms.numel():
        return None
    top = int(large[rms[large].argmax()])
    return {"features": [int(i) for i in large[:8]], "large_features": int(len(large)), "width": int(rms.numel()),
            "max_rms": round(float(rms[top]), 4), "max_feature": top, "typical_rms": round(typical, 4),
            "ratio": round(float(rms[top]) / typical, 1)}

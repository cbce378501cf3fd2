"""``target-leakage`` from per-window scaling: a forecaster's window scaled with statistics of the horizon too.

A window Dataset that scales each window as ``(w - w.mean()) / w.std()`` (or to ``[0, 1]`` by its min and max)
over past AND horizon before cutting it into input and target leaves an identity no forecast can have: for every
sample, input and target values *together* have mean exactly 0 and standard deviation exactly 1 (or min 0 and max 1),
while the input alone does not. The input's level then tells the model the mean and spread of what it must predict,
which at inference time nobody knows. Scaling on the past only (RevIN, a scaler fitted on the input window) makes
the input alone standardised and leaves the target free; a global scaler constrains neither. Continuous values meet
the identity on every sample of a batch by chance with probability zero, so no threshold other than round-off
(``TOLERANCE``) is needed.

Example::

    >>> import torch
    >>> w = torch.randn(8, 60).cumsum(1)
    >>> w = (w - w.mean(1, keepdim=True)) / w.std(1, keepdim=True)
    >>> scaled_with_target(w[:, :48, None], w[:, 48:])
    'standardised'
    >>> past = w[:, :48]
    >>> scaled_with_target(((past - past.mean(1, keepdim=True)) / past.std(1, keepdim=True))[..., None], w[:, 48:])
"""

from __future__ import annotations

from typing import Optional

import torch

#: round-off allowed on the joint statistics (a `w.std() + 1e-5` denominator moves the std by about 1e-5).
TOLERANCE = 1e-3
#: fewest samples judged: with fewer, "every sample" says little.
MIN_SAMPLES = 4


def _rows(t: torch.Tensor) -> Optional[torch.Tensor]:
    """``(B, T)`` values of one series per sample: ``(B, T)`` or ``(B, T, 1)``, else None (several channels)."""
    if t.dim() == 3 and t.shape[2] == 1:
        t = t[..., 0]
    return t.detach().double() if t.dim() == 2 else None


def _kinds(rows: torch.Tensor) -> dict[str, torch.Tensor]:
    mean, lo, hi = rows.mean(1), rows.amin(1), rows.amax(1)
    std = torch.minimum((rows.std(1, correction=1) - 1).abs(), (rows.std(1, correction=0) - 1).abs())
    return {"standardised": (mean.abs() <= TOLERANCE) & (std <= TOLERANCE),
            "min-max scaled": ((lo.abs() <= TOLERANCE) | ((lo + 1).abs() <= TOLERANCE)) & ((hi - 1).abs() <= TOLERANCE)}


def scaled_with_target(x: torch.Tensor, y: torch.Tensor) -> Optional[str]:
    """How every sample's input and target values were scaled together (``"standardised"``, ``"min-max scaled"``)
    when the input alone was not scaled that way (in at least half of the samples), else None."""
    if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)) or not (
            x.is_floating_point() and y.is_floating_point()) or x.shape[0] != y.shape[0] or x.shape[0] < MIN_SAMPLES:
        return None
    xs, ys = _rows(x), _rows(y)
    if xs is None or ys is None or xs.shape[1] < 2 or not bool(torch.isfinite(xs).all() & torch.isfinite(ys).all()):
        return None
    joint, alone = _kinds(torch.cat([xs, ys], 1)), _kinds(xs)
    for kind, held in joint.items():
        if bool(held.all()) and float(alone[kind].double().mean()) < 0.5:
            return kind
    return None

"""Pixels in torch: the viridis colour map and a prediction-against-target scatter raster, the raw images that
:mod:`lightning_sanity.images` frames into labelled charts.

Example::

    >>> import torch
    >>> colormap(torch.tensor([[0.0, 1.0]])).shape
    torch.Size([3, 1, 2])
"""

from __future__ import annotations

import torch

# Five anchors of matplotlib's perceptually uniform "viridis", interpolated linearly.
_VIRIDIS = torch.tensor([
    [0.267, 0.005, 0.329], [0.231, 0.322, 0.545], [0.129, 0.569, 0.549], [0.369, 0.788, 0.384], [0.993, 0.906, 0.144],
])


def colormap(values: torch.Tensor) -> torch.Tensor:
    """Map values in [0, 1] of shape (H, W) to an RGB image (3, H, W) in [0, 1] (viridis; NaN -> black).

    >>> colormap(torch.tensor([[0.0, 1.0]])).shape
    torch.Size([3, 1, 2])
    """
    v = values.detach().float().cpu()
    nan = torch.isnan(v)
    v = v.nan_to_num(0.0).clamp(0, 1) * (len(_VIRIDIS) - 1)
    lo = v.floor().long().clamp(max=len(_VIRIDIS) - 2)
    frac = (v - lo)[..., None]
    rgb = _VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac
    rgb[nan] = 0.0
    return rgb.permute(2, 0, 1).contiguous()


def scatter_image(prediction: torch.Tensor, target: torch.Tensor, size: int = 64) -> torch.Tensor:
    """Prediction (up) against target (right) as a ``size`` x ``size`` image, with the ideal diagonal in grey.

    Pixels hit by a sample are coloured by how many samples fall on them (dark violet 1 ... yellow most).

    >>> img = scatter_image(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]), size=16)
    >>> img.shape, bool(img[:, 0, 15].sum() > 2)
    (torch.Size([3, 16, 16]), True)
    """
    p = prediction.detach().float().cpu().flatten()
    t = target.detach().float().cpu().flatten()
    keep = torch.isfinite(p) & torch.isfinite(t)
    p, t = p[keep], t[keep]
    img = torch.zeros(3, size, size)
    diag = torch.arange(size)
    img[:, size - 1 - diag, diag] = 0.35
    if p.numel() == 0:
        return img
    lo, hi = float(torch.minimum(p.min(), t.min())), float(torch.maximum(p.max(), t.max()))
    span = hi - lo if hi > lo else 1.0
    col = ((t - lo) / span * (size - 1)).round().long().clamp(0, size - 1)
    row = (size - 1 - ((p - lo) / span * (size - 1)).round().long()).clamp(0, size - 1)
    counts = torch.zeros(size, size)
    counts.index_put_((row, col), torch.ones_like(p), accumulate=True)
    hit = counts > 0
    shade = colormap(0.35 + 0.65 * counts / counts.max())
    img[:, hit] = shade[:, hit]
    return img

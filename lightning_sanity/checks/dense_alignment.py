"""Dense targets that no longer line up with their inputs on validation: ``val-divergence``'s pattern ``misaligned``.

A segmentation mask (or any per-pixel target of the input's spatial shape) sits on what the image shows: bright
nuclei, a lesion's texture. Per sample, the Pearson correlation between an input channel and the target over the
pixels measures that registration; two splits of one data set share it up to sampling noise, sample by sample. A
validation export flipped, transposed or shifted against its masks (images written with ``origin="lower"``, masks
with the top-left origin) keeps every image and every mask plausible on its own, yet their correlation falls to
about zero on validation while it stays high in training, and the model's validation loss shows what it costs.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> masks = (torch.rand(40, 1, 16, 16, generator=g) > 0.8).float()
    >>> images = masks + 0.3 * torch.randn(40, 1, 16, 16, generator=g)
    >>> train, val = sample_correlations(images, masks), sample_correlations(images.flip(2), masks)
    >>> judge_misaligned([train], [val], train_loss=0.1, val_loss=1.2).kind
    'misaligned'
    >>> judge_misaligned([train], [sample_correlations(images, masks)], train_loss=0.1, val_loss=1.2) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch

from lightning_sanity.checks.validation import Divergence

#: Pixels a sample needs for its correlation to mean something (an 8x8 map).
MIN_PIXELS = 64
#: Samples (with a non-constant target) each split needs.
MIN_SAMPLES = 20
#: Samples kept per split: their correlations are one float per channel each.
MAX_SAMPLES = 4096
#: Training's mean per-sample correlation must be at least this (in absolute value): a target the input shows plainly.
#: Masks drawn on textures or shapes the input does not show as intensity correlate less and are not judged.
MIN_ASSOCIATION = 0.3
#: Validation keeps less than this fraction of training's correlation (or the opposite sign): the registration is
#: gone, not weakened by a harder split (a dimmer scanner halves a contrast, it does not remove it).
KEPT_FRACTION = 0.25
#: ... by this many standard errors of the difference of the two means (samples are independent; pixels are not).
STANDARD_ERRORS = 4.0
#: ... and the last validation loss is at least this many times the last training loss: the misalignment costs.
LOSS_RATIO = 2.0


def sample_correlations(x: object, y: object) -> Optional[torch.Tensor]:
    """``(B, C)`` Pearson correlations over the pixels between each input channel of ``x`` (``(B, C, *S)``, float)
    and the one-channel target ``y`` (``(B, *S)`` or ``(B, 1, *S)``), NaN where either is constant; None when the
    target is not one map of the input's spatial shape (class labels, sequences, multi-channel targets)."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() < 3 or not x.is_floating_point():
        return None
    spatial = tuple(x.shape[2:])
    pixels = math.prod(spatial)
    if pixels < MIN_PIXELS or y.shape[0] != x.shape[0] or tuple(y.shape[-len(spatial):]) != spatial:
        return None
    if y.numel() != x.shape[0] * pixels or y.is_complex():
        return None
    xs = x.detach().float().flatten(2)
    ys = y.detach().float().reshape(x.shape[0], 1, pixels)
    xs = xs - xs.mean(2, keepdim=True)
    ys = ys - ys.mean(2, keepdim=True)
    cov = (xs * ys).sum(2)
    norm = (xs.square().sum(2) * ys.square().sum(2)).sqrt()
    return torch.where(norm > 0, cov / norm.clamp_min(1e-30), torch.full_like(cov, math.nan))


def _stats(values: torch.Tensor) -> tuple[float, float, int]:
    finite = values[torch.isfinite(values)]
    n = int(finite.numel())
    if n < 2:
        return math.nan, math.nan, n
    return float(finite.mean()), float(finite.std()), n


def judge_misaligned(train: Sequence[torch.Tensor], val: Sequence[torch.Tensor], train_loss: float,
                     val_loss: float) -> Optional[Divergence]:
    """Whether validation's dense targets lost the registration with their inputs that training's have (see the
    module docstring), from the per-sample correlations of each split's batches."""
    if not train or not val or not (math.isfinite(train_loss) and math.isfinite(val_loss)):
        return None
    if val_loss < LOSS_RATIO * max(train_loss, 0.0) or val_loss <= 0:
        return None
    t, v = torch.cat([c.cpu() for c in train]), torch.cat([c.cpu() for c in val])
    if t.dim() != 2 or v.dim() != 2 or t.shape[1] != v.shape[1]:
        return None
    best = None
    for channel in range(t.shape[1]):
        mt, st, nt = _stats(t[:, channel])
        mv, sv, nv = _stats(v[:, channel])
        if nt < MIN_SAMPLES or nv < MIN_SAMPLES or not abs(mt) >= MIN_ASSOCIATION:
            continue
        sign = 1.0 if mt > 0 else -1.0
        error = math.sqrt(st * st / nt + sv * sv / nv)
        drop = abs(mt) - sign * mv
        if sign * mv < KEPT_FRACTION * abs(mt) and drop > STANDARD_ERRORS * error and (best is None or drop > best[0]):
            best = (drop, channel, mt, mv, nt, nv, error)
    if best is None:
        return None
    drop, channel, mt, mv, nt, nv, error = best
    return Divergence(
        "misaligned", "warning",
        f"The validation targets no longer line up with their inputs: per sample, input channel {channel} and the "
        f"target map correlate {mt:.2f} on average over {nt} training samples but {mv:.2f} over {nv} validation "
        f"samples ({drop / max(error, 1e-12):.0f} standard errors apart), and the validation loss ends at "
        f"{val_loss:.3g} against {train_loss:.3g} in training: validation images and masks are not registered as "
        "the training ones are (flipped, transposed or shifted against each other).",
        "Check how the validation images and their masks are read: the same origin (top-left vs `origin=\"lower\"`), "
        "axis order (H, W) and orientation as the training pairs; plot a few validation images with their masks.",
        {"channel": channel, "train_correlation": mt, "val_correlation": mv, "train_samples": nt,
         "val_samples": nv, "standard_error": error, "train_loss": train_loss, "val_loss": val_loss},
    )

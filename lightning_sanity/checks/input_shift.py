"""Validation inputs against training inputs: most validation samples on a scale training never showed, a pure
function of the two splits' histograms of per-sample input scale for ``val-divergence``.

Two splits of one data set, random or by time, share their inputs' scale: a validation sample's root-mean-square
lies among the training samples'. Preprocessing applied to one split only does not (peak normalisation indented
into the training augmentation branch, a scaler fitted and applied to the training split alone): the validation
samples reach the model at their raw scale. The rule asks for most validation samples beyond *twice* the whole
range of the training samples' scales (a range, not a spread: the chance that an exchangeable sample falls outside
the range of n others is 2 / (n + 1)), and for a validation loss that ended at least twice the training loss (the
model does clearly worse there). Train-only augmentation (noise, gain, mixing) widens the training range; a trend
moves a forecaster's validation windows above the training ones by far less than a factor of two of the range.

Example::

    >>> import torch
    >>> train = scale_histogram(torch.randn(256, 100))
    >>> judge_input_shift(train, scale_histogram(torch.randn(64, 100)), 0.1, 0.5) is None
    True
    >>> judge_input_shift(train, scale_histogram(50 * torch.randn(64, 100)), 0.1, 0.5).kind
    'input-shift'
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch

from lightning_sanity.checks.validation import Divergence

#: log10 of a sample's RMS, binned: 0.05 wide (12 %), from 1e-10 to 1e10.
LOW, HIGH, BINS = -10.0, 10.0, 400
#: a validation sample is on another scale beyond this factor of the training samples' whole range of scales.
FACTOR = 2.0
#: more than this share of the validation samples must be there.
SHARE = 0.5
#: the validation loss must end at least this many times the training loss: the mismatch shows in the loss.
LOSS_RATIO = 2.0
#: samples needed in each split.
MIN_SAMPLES = 20
#: batches whose scales a split keeps at most (a float a sample: a first epoch of 4,096 batches of 256, 4 MB).
MAX_BATCHES = 4096


def sample_scales(x: object) -> Optional[torch.Tensor]:
    """Each sample's root-mean-square over its features, for a float ``(N, ...)`` input with at least one feature,
    on its device (no host sync; two kernels, what a training step pays); None otherwise.

    >>> sample_scales(torch.full((2, 4), 3.0)).tolist(), sample_scales(torch.ones(3, dtype=torch.long))
    ([3.0, 3.0], None)
    """
    found = sample_norms(x)
    return None if found is None else found[0].div_(found[1])


def sample_norms(x: object) -> Optional[tuple[torch.Tensor, float]]:
    """:func:`sample_scales` before its last step: each sample's L2 norm (float32, on the device) and the divisor,
    sqrt(features), that makes it the root-mean-square; a caller that keeps many batches divides once at the end.

    >>> norms, divisor = sample_norms(torch.full((2, 4), 3.0))
    >>> norms.tolist(), divisor
    ([6.0, 6.0], 2.0)
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() < 2 or x.numel() == 0:
        return None
    flat = x.detach() if x.requires_grad else x  # detaching and reshaping are operator calls a step: where needed
    flat = flat if flat.dim() == 2 else flat.reshape(flat.shape[0], -1)
    return torch.linalg.vector_norm(flat, dim=1, dtype=torch.float32), math.sqrt(flat.shape[1])


def histogram(scales: Sequence[torch.Tensor]) -> Optional[torch.Tensor]:
    """Histogram of log10 of the samples' scales (:func:`sample_scales` of each batch); None when there are none."""
    if not scales:
        return None
    rms = torch.cat([s.to(scales[0].device) for s in scales])
    return torch.histc(rms.clamp_min(1e-30).log10(), bins=BINS, min=LOW, max=HIGH)


def scale_histogram(x: object) -> Optional[torch.Tensor]:
    """:func:`histogram` of one input's :func:`sample_scales`.

    >>> scale_histogram(torch.ones(3, 4)).sum().item(), scale_histogram(torch.ones(3, dtype=torch.long))
    (3.0, None)
    """
    scales = sample_scales(x)
    return None if scales is None else histogram([scales])


def judge_input_shift(train: Optional[torch.Tensor], val: Optional[torch.Tensor], train_loss: float,
                      val_loss: float) -> Optional[Divergence]:
    """A warning when more than half of the validation samples' scales lie beyond twice the training samples'
    range of scales and the validation loss ended at least twice the training loss."""
    if train is None or val is None:
        return None
    train, val = train.double().cpu(), val.double().cpu()
    n_train, n_val = float(train.sum()), float(val.sum())
    if n_train < MIN_SAMPLES or n_val < MIN_SAMPLES:
        return None
    if not (math.isfinite(train_loss) and math.isfinite(val_loss) and 0 < LOSS_RATIO * train_loss <= val_loss):
        return None
    width = (HIGH - LOW) / BINS
    filled = train.nonzero().flatten()
    lo, hi = int(filled[0]), int(filled[-1])
    spare = int(math.ceil(math.log10(FACTOR) / width))
    outside = float(val[:max(lo - spare, 0)].sum() + val[hi + 1 + spare:].sum())
    share = outside / n_val
    if share <= SHARE:
        return None
    t_low, t_high = 10 ** (LOW + lo * width), 10 ** (LOW + (hi + 1) * width)
    v_filled = val.nonzero().flatten()
    v_low, v_high = 10 ** (LOW + int(v_filled[0]) * width), 10 ** (LOW + (int(v_filled[-1]) + 1) * width)
    data = {"train_input_rms_range": [t_low, t_high], "val_input_rms_range": [v_low, v_high],
            "val_share_off_scale": share, "train_loss": train_loss, "val_loss": val_loss}
    return Divergence(
        "input-shift", "warning",
        f"{share:.0%} of the validation samples reach the model on another scale than any training sample: their "
        f"root-mean-square spans [{v_low:.2g}, {v_high:.2g}] against [{t_low:.2g}, {t_high:.2g}] in training, "
        f"beyond {FACTOR:g}x that range; the validation loss ends at {val_loss:.3g}, {val_loss / train_loss:.1f}x "
        "the training loss. The input preprocessing differs between the splits.",
        "Apply the same normalisation to every split: look for a normalisation (per-sample peak/RMS, a scaler) "
        "done only in the training dataset's augmentation branch (`if self.train:`) or fitted and applied to the "
        "training split alone.",
        data,
    )

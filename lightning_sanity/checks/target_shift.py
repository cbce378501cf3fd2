"""Validation targets against training targets: regression targets on another scale in the two splits (a target
scaler applied to one split only), a pure function of the two splits' target moments for ``val-divergence``.

Example::

    >>> import torch
    >>> train = target_moments(torch.randn(256))
    >>> judge_target_shift(train, target_moments(torch.randn(64))) is None
    True
    >>> judge_target_shift(train, target_moments(150 + 75 * torch.randn(64))).kind
    'target-shift'
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from lightning_sanity.checks.validation import Divergence


def target_moments(y: torch.Tensor) -> Optional[torch.Tensor]:
    """``[count, sum, sum of squares, min, max]`` of a float target tensor, on its device (no host sync), or None
    for targets that are not floats (class indices) or empty.

    >>> target_moments(torch.tensor([1.0, 3.0])).tolist()
    [2.0, 4.0, 10.0, 1.0, 3.0]
    """
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.numel() == 0:
        return None
    v = y.detach().double().reshape(-1)
    return torch.stack([v.new_tensor(float(v.numel())), v.sum(), (v * v).sum(), v.min(), v.max()])


def merge_moments(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The moments of two sets of targets together."""
    if a is None or b is None:
        return a if b is None else b
    return torch.stack([a[0] + b[0], a[1] + b[1], a[2] + b[2], torch.minimum(a[3], b[3]), torch.maximum(a[4], b[4])])


def _summary(m: torch.Tensor) -> tuple[float, float, float, float]:
    count, total, squares, low, high = (float(v) for v in m.cpu())
    mean = total / count
    return mean, math.sqrt(max(squares / count - mean * mean, 0.0)), low, high


def judge_target_shift(train: Optional[torch.Tensor], val: Optional[torch.Tensor]) -> Optional[Divergence]:
    """An error when the validation targets lie outside everything training showed: their mean outside the range
    of the training targets, or their spread (standard deviation) wider than that whole range.

    Two splits of one data set, however made (random, stratified, by time), share their targets' scale: the mean
    of a validation split lies among the training targets and its spread within their range. A mean outside the
    training range, or a spread beyond it, is another scale or another encoding: a scaler fitted and applied to
    one split only, targets in other units. No sample size enters: the rule is geometric, not a test that any
    small shift would pass on enough data.
    """
    if train is None or val is None or float(train[0]) < 2 or float(val[0]) < 2:
        return None
    t_mean, t_std, t_low, t_high = _summary(train)
    v_mean, v_std, v_low, v_high = _summary(val)
    if not all(math.isfinite(v) for v in (t_mean, t_std, v_mean, v_std)) or t_high <= t_low:
        return None
    outside = not (t_low <= v_mean <= t_high)
    wider = v_std > t_high - t_low
    if not (outside or wider):
        return None
    data = {"train_target_mean": t_mean, "train_target_std": t_std, "train_target_range": [t_low, t_high],
            "val_target_mean": v_mean, "val_target_std": v_std, "val_target_range": [v_low, v_high]}
    how = (f"their mean {v_mean:.3g} lies outside the training targets' range" if outside else
           f"their spread (sd {v_std:.3g}) is wider than the training targets' whole range")
    return Divergence(
        "target-shift", "error",
        f"The validation targets (mean {v_mean:.3g}, sd {v_std:.3g}, in [{v_low:.3g}, {v_high:.3g}]) are on another "
        f"scale than the training targets (mean {t_mean:.3g}, sd {t_std:.3g}, in [{t_low:.3g}, {t_high:.3g}]): "
        f"{how}. What the model learns on the training scale cannot hold on validation, and the validation loss "
        "measures the scale mismatch.",
        "Fit the target scaler (`StandardScaler`, a log transform, a unit conversion) on the training targets once "
        "and apply the same transform to every split's targets (and invert it for reporting); build both datasets "
        "through one preprocessing function.",
        data,
    )

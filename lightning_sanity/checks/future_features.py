"""Input features computed from the future of the series a model forecasts (a centred moving average, a
"smoothed" or interpolated copy, the next value itself): pure functions on the first training batch for
``target-leakage``; :class:`~lightning_sanity.callbacks.leakage.LeakageChecks` calls them.

A forecaster's input often holds the series itself in one channel (the targets are that channel shifted by one:
:func:`shifted_channel`) next to features derived from it. A feature derived from the past is, at every step
``t``, a function of the series up to ``t``; one that reads the future needs values after ``t``. For features that
are linear in the series (moving averages, differences, filters, lags and leads) the test is exact: regress the
feature at ``t`` on the series over the window ``t - K .. t`` and over ``t - K .. t + K``. A feature computed from
the series leaves only float round-off (a share ~1e-13 of its variance) once its whole window is given; if that
needs the values after ``t``, the model can read its targets through it (:func:`future_features`). Nonlinear
features (a centred rolling median) are not seen.

Example::

    >>> import torch
    >>> s = torch.randn(16, 41, generator=torch.Generator().manual_seed(0))
    >>> centred = (s[:, :-2] + s[:, 1:-1] + s[:, 2:]) / 3            # s[t-1..t+1], at position t
    >>> x = torch.stack([s[:, 1:-2], centred[:, :-1]], -1)            # (B, T, 2): the series and its average
    >>> shifted_channel(x, s[:, 2:-1])
    (1, 2, 0)
    >>> [c for c, _, _ in future_features(x, 1, 2, 0)]
    [1]
"""

from __future__ import annotations

from typing import Optional

import torch

from lightning_sanity.checks.leakage import shift_axis

#: Channels scanned for the series at most (a wider input is not a set of hand-made features).
MAX_CHANNELS = 64
#: Steps of the past and of the future given to the regression at most (a window of 2 x 16 + 1 values).
MAX_WINDOW = 16
#: Rows (sample x step) regressed at most: an exact relation holds on any subset, and this bounds the cost on
#: long series and large batches (two least-squares fits of 8192 x 34 per channel).
MAX_ROWS = 8192
#: A feature is computed from a window of the series when that window leaves less than this share of its variance:
#: float32 round-off leaves ~1e-13, a measured covariate or noisy feature far more than 1e-6.
EXACT_SHARE = 1e-6
#: ...and reads the future when the past alone leaves at least this share, a thousand times EXACT_SHARE: the values
#: after t carry a real part of it, not round-off.
PAST_SHARE = 1e-3


def shifted_channel(x: torch.Tensor, y: torch.Tensor) -> Optional[tuple[int, int, int]]:
    """``(time axis, channel axis, channel)`` of ``x`` (``(B, T, C)`` or ``(B, C, T)``) whose channel, shifted
    by one along the time axis, is the target ``y`` (``(B, T)`` or ``(B, T, 1)``), or None."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() != 3:
        return None
    if y.dim() == 3 and y.shape[-1] == 1:
        y = y[..., 0]
    if y.dim() != 2:
        return None
    for channel_axis in (2, 1):
        if x.shape[channel_axis] > MAX_CHANNELS:
            continue
        for j in range(x.shape[channel_axis]):
            if shift_axis(x.select(channel_axis, j), y) == 1:
                return 3 - channel_axis, channel_axis, j
    return None


def _residual_share(design: torch.Tensor, feature: torch.Tensor) -> float:
    design = torch.cat([design, torch.ones_like(design[:, :1])], 1)
    solution = torch.linalg.lstsq(design, feature[:, None]).solution
    residual = feature[:, None] - design @ solution
    return float((residual ** 2).sum() / ((feature - feature.mean()) ** 2).sum())


def future_features(x: torch.Tensor, time_axis: int, channel_axis: int, series: int) -> list[tuple[int, float, float]]:
    """Channels of ``x`` other than ``series`` that are an exact linear function of the series over a window
    reaching after ``t``, but not of its past up to ``t``: ``[(channel, past share, window share)]`` (the share of
    the feature's variance each regression leaves)."""
    if x.dim() != 3 or {time_axis, channel_axis} != {1, 2}:
        return []
    xs = x.detach().cpu().double().movedim(time_axis, 1)  # (B, T, C)
    length = xs.shape[1]
    window = min(MAX_WINDOW, (length - 1) // 4)
    if window < 1 or not bool(torch.isfinite(xs).all()):
        return []
    s = xs[..., series]
    windows = s.unfold(1, 2 * window + 1, 1).reshape(-1, 2 * window + 1)[:MAX_ROWS]  # centred at t = window ..
    if windows.shape[0] < 4 * windows.shape[1]:
        return []
    found = []
    for c in range(xs.shape[2]):
        if c == series:
            continue
        feature = xs[:, window:length - window, c].reshape(-1)[:MAX_ROWS]
        if float(feature.std()) == 0:
            continue
        full = _residual_share(windows, feature)
        if full >= EXACT_SHARE:
            continue
        past = _residual_share(windows[:, : window + 1], feature)
        if past >= PAST_SHARE:
            found.append((c, past, full))
    return found

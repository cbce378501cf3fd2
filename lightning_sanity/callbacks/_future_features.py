"""``causal-leakage`` glue for next-step forecasters whose input holds the series next to features derived from it:
a feature computed from values after each step (a centred moving average, a central difference) carries the series'
future into position ``t``, so the output at ``t`` depends on the values after ``t`` however causal the model is. The
first training batch is tested by :func:`lightning_sanity.checks.future_features.future_features`; called by
:class:`~lightning_sanity.callbacks.leakage.LeakageChecks`.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.checks import future_features as FF

ADVICE = ("Compute every feature at step t from values up to t only: a trailing window (`rolling(k)` without "
          "`center=True`, `x.unfold(1, k, 1)` over left-padded values), causal filters, lags but never leads; fit "
          "interpolation and smoothing on the past alone.")


def check_future_features(callback: Any, trainer: Any, x: torch.Tensor, found: tuple[int, int, int]) -> None:
    """Report the channels of ``x`` computed from the future of the series channel ``found`` describes."""
    check = "causal-leakage"
    time_axis, channel_axis, series = found
    channels = FF.future_features(x, time_axis, channel_axis, series)
    callback._ran[check].append(f"no input channel computed from the series' values after each step (series in "
                                f"channel {series} of {x.shape[channel_axis]})")
    if not channels:
        return
    callback._found.add(check)
    channel, past, full = channels[0]
    callback.report(
        trainer, check, "error",
        f"Input channel {channel} is computed from the forecast series (channel {series}) including its values "
        f"after each step: the series over a window around step t explains it exactly (a share {full:.1g} of its "
        f"variance left, float round-off) while the window up to t leaves {past:.1%}. At step t the model can "
        "read the next value, its target, through this feature (a centred moving average, a smoothed or "
        "interpolated series), so its training and validation losses mean nothing.",
        ADVICE, where=f"input channel {channel}", key="future-feature",
        data={"channels": [c for c, _, _ in channels][:20], "series_channel": series, "past_share": past,
              "window_share": full},
    )

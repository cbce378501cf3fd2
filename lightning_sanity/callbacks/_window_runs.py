"""Run hashes of windowed inputs for ``split-overlap``, gathered as the batches pass (no sync, no second pass).

For each reading of the input's shape as ``(batch, time, channels)`` (:func:`~lightning_sanity.checks.
window_overlap.readings`), each batch adds the ``(B, T')`` int64 hashes of its runs of time steps, computed on the
device and kept there until read (one transfer per split). The judgement is
:func:`lightning_sanity.checks.window_overlap.judge`.

Example::

    >>> import torch
    >>> runs = WindowRuns()
    >>> runs.add(torch.randn(4, 64, 3), "train")
    >>> runs.add(torch.randn(2, 64, 3), "val")
    >>> sorted(runs.judge())
    [1]
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.checks import window_overlap as W
from lightning_sanity.checks.splits import overlap_severity

#: run hashes kept per split and reading (8 bytes each; 32 MiB): beyond, later batches are not added.
MAX_RUNS = 1 << 22


class WindowRuns:
    """Run hashes per split (``"train"``, ``"val"``) and time axis."""

    def __init__(self) -> None:
        self._store: dict[tuple[str, int], list[torch.Tensor]] = {}
        self._count: dict[tuple[str, int], int] = {}
        self._shape: Optional[tuple[int, ...]] = None
        self.off = False

    def add(self, x: torch.Tensor, split: str) -> None:
        """Hash the runs of batch ``x``; a sample shape that changes between batches (variable-length sequences)
        turns the windows reading off."""
        if self.off:
            return
        shape = tuple(x.shape[1:])
        if self._shape is None:
            self._shape = shape
        axes = W.readings(x)
        if shape != self._shape or not axes:
            self.off = True
            self._store.clear()
            return
        for axis in axes:
            key = (split, axis)
            if self._count.get(key, 0) >= MAX_RUNS:
                continue
            runs = W.window_runs(x, axis)
            self._store.setdefault(key, []).append(runs)
            self._count[key] = self._count.get(key, 0) + runs.numel()

    def judge(self) -> dict[int, dict[str, Any]]:
        """The verdict of :func:`~lightning_sanity.checks.window_overlap.judge` per time axis read."""
        out = {}
        if self.off:
            return out
        for (split, axis), parts in self._store.items():
            if split != "train" or ("val", axis) not in self._store:
                continue
            train = torch.cat(parts).cpu()
            val = torch.cat(self._store[("val", axis)]).cpu()
            channels = self._shape[2 - axis] if self._shape is not None else 1
            result = W.judge(train, val, W.run_length(channels))
            if result is not None:
                out[axis] = result
        return out

    def clear(self) -> None:
        self._store.clear()
        self.off = True


def report_windows(callback: Any, trainer: Any, text: str, threshold: float) -> None:
    """The windows half of ``split-overlap``, judged when whole samples showed no overlap: the detail ``text`` of
    the whole-sample judgement with the windows' figures appended, and a finding when at least ``threshold`` of
    the validation windows overlap training windows on *both* sides in time (an error from one half)."""
    windows = callback._windows
    try:
        results = windows.judge()
    except Exception as err:  # the whole-sample verdict stands
        callback.detail(trainer, "split-overlap", f"{text}; windows not compared ({err!r})")
        return
    finally:
        windows.clear()
    if not results:
        callback.detail(trainer, "split-overlap", text)
        return
    axis, best = max(results.items(), key=lambda item: item[1]["both"])
    figures = (f"{best['before']:.0%} of {best['windows']} validation windows share a stretch of time steps "
               f"(axis {axis}) with a training window that starts earlier, {best['after']:.0%} with one that starts "
               "later")
    callback.detail(trainer, "split-overlap", f"{text}; {figures}")
    if best["both"] < threshold:
        return
    severity = overlap_severity(best["both"], threshold)
    callback.report(
        trainer, "split-overlap", severity,
        f"Validation windows overlap training windows in time, on both sides: {figures} (the same measured values, "
        "shifted; a split in time overlaps at its boundary only, on one side). Overlapping windows were cut first "
        "and then split at random: each validation window's neighbours, from the same recording, are in training, "
        "and validation measures memory of the recordings, not generalisation to new ones.",
        "Split the recordings (subjects, machines, series) first, then cut each split into windows; or split each "
        "series in time, with a gap of one window between the parts.",
        where="validation data", at_step=False, key="windows",
        data={"time_axis": axis, "earlier_share": best["before"], "later_share": best["after"],
              "both_sides_share": best["both"], "overlap_share": best["any"],
              "validation_windows": best["windows"]},
    )

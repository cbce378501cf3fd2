"""Per-sample input measures of ``val-divergence``, for the first training epoch and the first validation run: each
sample's input scale (:mod:`lightning_sanity.checks.input_shift`) and its input-target correlation
(:mod:`lightning_sanity.checks.dense_alignment`), kept on the device and read once at the end of fit.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from lightning_sanity.batch import input_of, split_batch
from lightning_sanity.checks import dense_alignment as DA, input_shift as IS

log = logging.getLogger(__name__)


class InputSamples:
    """Collects both measures per split (``"train"``, ``"val"``) until the split's pass ends or enough is kept."""

    def __init__(self) -> None:
        # per-sample input norms and their divisor (the scales, divided when read: one op less a step)
        self._norms: dict[str, list[tuple[torch.Tensor, float]]] = {"train": [], "val": []}
        self.scales_done = {"train": False, "val": False}
        self.aligned: dict[str, Any] = {"train": [], "val": []}  # per-sample input-target correlations, or None
        self.aligned_done = False  # the first training epoch was read

    def scales(self, split: str) -> list[torch.Tensor]:
        """The per-sample input scales of the batches kept of ``split`` (:func:`~lightning_sanity.checks.
        input_shift.sample_scales`), in one tensor when every batch had one divisor (one division, not one a batch:
        the same values, division being elementwise)."""
        kept = self._norms[split]
        if len({divisor for _, divisor in kept}) == 1:
            try:
                return [torch.cat([norms for norms, _ in kept]) / kept[0][1]]
            except RuntimeError:  # batches on several devices: divided one by one
                pass
        return [norms / divisor for norms, divisor in kept]

    def take(self, split: str, batch: Any) -> None:
        self._take_scales(split, batch)
        self._take_alignment(split, batch)

    def end(self, split: str) -> None:
        """The split's first pass is over: what was kept describes it."""
        self.scales_done[split] = True
        if split == "train":
            self.aligned_done = True

    def _take_scales(self, split: str, batch: Any) -> None:
        if self.scales_done[split]:
            return
        try:
            found = IS.sample_norms(input_of(batch))
            if found is None:
                self.scales_done[split] = True
            else:  # on the device, binned and read once at the end of fit
                self._norms[split].append(found)
                self.scales_done[split] = len(self._norms[split]) >= IS.MAX_BATCHES
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence input scales failed", exc_info=True)
            self.scales_done[split] = True

    def _take_alignment(self, split: str, batch: Any) -> None:
        kept = self.aligned[split]
        if kept is None or (split == "train" and self.aligned_done):
            return
        try:
            x, y = split_batch(batch)
            found = DA.sample_correlations(x, y)  # on the device, read once at the end of fit
            if found is None or sum(int(c.shape[0]) for c in kept) >= DA.MAX_SAMPLES:
                self.aligned[split] = kept if found is not None else None
            else:
                kept.append(found)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence alignment failed", exc_info=True)
            self.aligned[split] = None

"""The training losses ``loss-trend`` judges, measured without a host sync per step: the newest wait on the device
and reach the host in one transfer per chunk; the host history is thinned in pairs past a cap.

Example::

    >>> import torch
    >>> history = LossHistory()
    >>> for value in (2.5, 2.25, float("nan"), 1.75):
    ...     history.add(torch.tensor(value), scale=1)
    >>> history.flush(); history.values(), history.nonfinite
    ([2.5, 2.25, 1.75], 1)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import torch

from lightning_sanity.batch import split_batch

#: losses kept on the device between reads: one host transfer per this many batches (and at epoch ends).
_DEVICE_CHUNK = 256
#: host history length; beyond it neighbouring values are averaged in pairs (the trend survives, memory stays flat).
_HOST_CAP = 4096


@dataclasses.dataclass
class LossHistory:
    """Losses in step order: ``losses`` on the host (each the mean of ``block`` batches), ``partial`` the batches
    of the block being filled, ``buffer[:fill]`` those still on the device; non-finite ones only counted."""

    buffer: Optional[torch.Tensor] = None
    fill: int = 0
    losses: list[float] = dataclasses.field(default_factory=list)
    block: int = 1
    partial: list[float] = dataclasses.field(default_factory=list)
    nonfinite: int = 0
    finite: int = 0
    #: batches per optimizer update (gradient accumulation) and the first batch's target size, once described
    per_update: int = 1
    elements: Optional[int] = None

    def describe(self, batch: Any, per_update: int) -> None:
        """Note what one loss value averages: the batch target's elements (a shape, no device read) and the
        batches of one optimizer update."""
        self.per_update = max(1, int(per_update))
        try:
            y = split_batch(batch)[1]
            self.elements = int(y.numel()) if isinstance(y, torch.Tensor) else 0
        except Exception:  # an unusual batch: its size is unknown (0)
            self.elements = 0

    def add(self, loss: torch.Tensor, scale: float) -> None:
        """Add one step's scalar loss, times ``scale`` (Lightning divided it by the accumulation factor)."""
        if loss.device.type == "cpu":
            # Nothing to wait for on the CPU: reading the value costs less than a device-side copy.
            if self.fill:
                self.flush()
            value = loss.item() * scale  # Lightning divided the loss by the accumulation factor
            if self.block == 1 and len(self.losses) < _HOST_CAP and math.isfinite(value):
                self.finite += 1  # what take() does with one finite value while nothing is thinned
                self.losses.append(value)
                return
            self.take((value,))
            return
        loss = loss.detach().reshape(())
        if scale != 1:
            loss = loss * scale
        if self.buffer is None or self.buffer.device != loss.device:
            self.flush()
            self.buffer = torch.empty(_DEVICE_CHUNK, device=loss.device)
        self.buffer[self.fill] = loss  # a device-side copy: no host sync
        self.fill += 1
        if self.fill == _DEVICE_CHUNK:
            self.flush()

    def flush(self) -> None:
        """Move the losses waiting on the device to the host history (one transfer)."""
        if self.buffer is None or self.fill == 0:
            return
        values = self.buffer[: self.fill].tolist()
        self.fill = 0
        self.take(values)

    def take(self, values: list[float]) -> None:
        """Add losses, in step order, to the host history."""
        for value in values:
            if not math.isfinite(value):
                self.nonfinite += 1
                continue
            self.finite += 1
            self.partial.append(value)
            if len(self.partial) >= self.block:
                self.losses.append(sum(self.partial) / len(self.partial))
                self.partial = []
        if len(self.losses) > _HOST_CAP:
            pairs = self.losses
            self.losses = [(pairs[k] + pairs[k + 1]) / 2 for k in range(0, len(pairs) - 1, 2)]
            self.block *= 2

    def values(self) -> list[float]:
        """The host history with the unfinished block's mean at its end."""
        return self.losses + ([sum(self.partial) / len(self.partial)] if self.partial else [])

"""Fingerprints of many batches, gathered in blocks: a step copies its sampled rows, a block is hashed at once.

A training step then costs one copy (a single kernel) instead of the eight or so of a hash; every
:data:`PENDING_ROWS` samples (or when the width, dtype or device changes, or when the hashes are read) the block is
hashed in one go. The hashes equal those of :func:`~lightning_sanity.checks.splits.hash_rows` batch by batch: a hash
is a sum modulo 2^64, the same in any grouping of rows.

Example::

    >>> import torch
    >>> from lightning_sanity.checks import splits as S
    >>> blocks = RowBlocks(halves=False)
    >>> x = torch.randn(3, 5)
    >>> blocks.add(x)
    >>> bool((blocks.hashes() == S.fingerprints(x)).all())
    True
"""

from __future__ import annotations

from typing import Optional

import torch

from lightning_sanity.checks import splits as S

#: rows gathered before they are hashed together.
PENDING_ROWS = 2048


class RowBlocks:
    """Sampled rows of batches, hashed a block at a time; ``halves`` as in :func:`~lightning_sanity.checks.splits.
    hash_rows` (``(N, 3)`` hashes, or ``(N,)``)."""

    def __init__(self, halves: bool = True) -> None:
        self.halves = halves
        self._hashed: list[torch.Tensor] = []
        self._block: Optional[torch.Tensor] = None
        self._filled = 0

    def add(self, x: torch.Tensor) -> None:
        """Copy the sampled rows of batch ``x`` (``(B, ...)``) into the block (no allocation per step)."""
        n, values = int(x.shape[0]), x[0].numel() if x.shape[0] else 0
        width = min(values, S.FINGERPRINT_VALUES)
        block = self._block
        if block is not None and (block.shape[1] != width or block.dtype != x.dtype or block.device != x.device
                                  or self._filled + n > block.shape[0]):
            self.flush()
            if block.shape[1] != width or block.dtype != x.dtype or block.device != x.device:
                block = self._block = None
        if n > PENDING_ROWS:  # a batch larger than a block: hashed on its own
            self._hashed.append(S.hash_rows(S.sample_rows(x), halves=self.halves, scratch=True))
            return
        if block is None:
            block = self._block = torch.empty(PENDING_ROWS, width, dtype=x.dtype, device=x.device)
        S.sample_rows(x, out=block[self._filled : self._filled + n])
        self._filled += n
        if self._filled == block.shape[0]:
            self.flush()

    def flush(self) -> None:
        """Hash the rows gathered so far."""
        if self._block is not None and self._filled:
            self._hashed.append(S.hash_rows(self._block[: self._filled], halves=self.halves, scratch=True))
        self._filled = 0

    def hashes(self) -> Optional[torch.Tensor]:
        """Every hash so far, in order, on the host (the one transfer); None when nothing was added."""
        self.flush()
        self._block = None
        return torch.cat(self._hashed).cpu() if self._hashed else None

    def clear(self) -> None:
        self._hashed, self._block, self._filled = [], None, 0

    def __bool__(self) -> bool:
        return bool(self._hashed) or self._filled > 0

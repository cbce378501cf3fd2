"""Rows of many batches gathered in blocks: a step copies its rows, the work runs on a whole block at once.

A training step then costs one copy (a single kernel) instead of the several of the work itself; every
:data:`PENDING_ROWS` samples (or when the width, dtype or device changes, or when the result is read) the block is
handed on in one go. :class:`BlockedRows` is the mechanism; :class:`RowBlocks` hashes the blocks (split-overlap's
fingerprints, the same hashes as :func:`~lightning_sanity.checks.splits.hash_rows` batch by batch: a hash is a sum
modulo 2^64, the same in any grouping of rows), and ``val-divergence``'s column moments sum them.

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

import math
from typing import Optional

import torch

from lightning_sanity.checks import splits as S

#: rows gathered before they are handed on together.
PENDING_ROWS = 2048
#: block views kept at most: batches of one size need PENDING_ROWS / size of them; sizes that vary get no more.
_MAX_SLICES = 256


class BlockedRows:
    """Rows of batches gathered into a block and handed to :meth:`take` a block at a time (in order).

    Subclasses say how wide a batch's rows are (:meth:`width`), how they are copied (:meth:`fill`) and what is done
    with a block (:meth:`take`).
    """

    def __init__(self) -> None:
        self._block: Optional[torch.Tensor] = None
        self._filled = 0
        # Views of the block by (start, rows), made once: batches of one size fill the same slices block after block,
        # and slicing a tensor is an operator call of its own on every step.
        self._slices: dict[tuple[int, int], torch.Tensor] = {}

    def width(self, x: torch.Tensor) -> int:
        """Values a row of batch ``x`` holds in the block."""
        raise NotImplementedError

    def fill(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The rows of ``x`` as the block holds them, into ``out`` when given."""
        raise NotImplementedError

    def take(self, rows: torch.Tensor) -> None:
        """The work on a block of rows."""
        raise NotImplementedError

    def add(self, x: torch.Tensor) -> None:
        """Copy the rows of batch ``x`` (``(B, ...)``) into the block (no allocation per step)."""
        n, width = int(x.shape[0]), self.width(x)
        block = self._block
        if block is not None and (block.shape[1] != width or block.dtype != x.dtype or block.device != x.device
                                  or self._filled + n > block.shape[0]):
            self.flush()
            if block.shape[1] != width or block.dtype != x.dtype or block.device != x.device:
                block = self._block = None
                self._slices = {}
        if n > PENDING_ROWS:  # a batch larger than a block: handed on alone
            self.take(self.fill(x))
            return
        if block is None:
            block = self._block = torch.empty(PENDING_ROWS, width, dtype=x.dtype, device=x.device)
            self._slices = {}
        out = self._slices.get((self._filled, n))
        if out is None:
            out = block[self._filled : self._filled + n]
            if len(self._slices) < _MAX_SLICES:
                self._slices[(self._filled, n)] = out
        self.fill(x, out=out)
        self._filled += n
        if self._filled == block.shape[0]:
            self.flush()

    def flush(self) -> None:
        """Hand on the rows gathered so far."""
        if self._block is not None and self._filled:
            self.take(self._block[: self._filled])
        self._filled = 0

    def close(self) -> None:
        """Hand on the rows gathered so far and free the block."""
        self.flush()
        self._block, self._slices = None, {}


class RowBlocks(BlockedRows):
    """Sampled rows of batches, hashed a block at a time; ``halves`` as in :func:`~lightning_sanity.checks.splits.
    hash_rows` (``(N, 3)`` hashes, or ``(N,)``)."""

    def __init__(self, halves: bool = True) -> None:
        super().__init__()
        self.halves = halves
        self._hashed: list[torch.Tensor] = []

    def width(self, x: torch.Tensor) -> int:
        return min(math.prod(x.shape[1:]) if x.shape[0] else 0, S.FINGERPRINT_VALUES)  # no view of x[0] a step

    def fill(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        return S.sample_rows(x, out=out)

    def take(self, rows: torch.Tensor) -> None:
        self._hashed.append(S.hash_rows(rows, halves=self.halves, scratch=True))

    def hashes(self) -> Optional[torch.Tensor]:
        """Every hash so far, in order, on the host (the one transfer); None when nothing was added."""
        self.close()
        return torch.cat(self._hashed).cpu() if self._hashed else None

    def clear(self) -> None:
        self._hashed, self._block, self._filled, self._slices = [], None, 0, {}

    def __bool__(self) -> bool:
        return bool(self._hashed) or self._filled > 0

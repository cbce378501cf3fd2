"""Split overlap: per-sample fingerprints of the exact input bits, and how many validation samples training holds.

Pure functions on tensors; the callback :class:`lightning_sanity.callbacks.split_overlap.SplitOverlap` feeds them
the batches as they pass.

Example::

    >>> import torch
    >>> train, val = torch.randn(10, 4), torch.randn(3, 4)
    >>> overlap(fingerprints(torch.cat([val[:1], val[1:]])), fingerprints(torch.cat([train, val[:2]])))
    (2, 3, 0.0)
"""

from __future__ import annotations

import torch

#: Values of a sample hashed at most: beyond, this many evenly spaced ones (distinct real samples differ there).
FINGERPRINT_VALUES = 4096
_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
         torch.bfloat16: torch.int16}
_WEIGHTS: dict[tuple[int, str], torch.Tensor] = {}


def fingerprints(x: torch.Tensor) -> torch.Tensor:
    """One int64 hash per sample of ``x`` (``(B, ...)``), computed on ``x``'s device from the exact bits of its
    values: equal samples get equal fingerprints, distinct ones collide with probability about 2^-60.

    >>> import torch
    >>> x = torch.tensor([[0.5, 1.0], [0.5, 1.0], [0.5, 1.5]])
    >>> f = fingerprints(x)
    >>> bool(f[0] == f[1]), bool(f[0] == f[2])
    (True, False)
    """
    rows = x.detach().reshape(x.shape[0], -1)
    if rows.shape[1] > FINGERPRINT_VALUES:
        index = torch.linspace(0, rows.shape[1] - 1, FINGERPRINT_VALUES, device=rows.device).long()
        rows = rows.index_select(1, index)
    if rows.is_floating_point():
        # +0.0 for -0.0, so that the sign of a zero does not make two samples differ.
        bits = (rows + 0.0).contiguous().view(_BITS.get(rows.dtype, torch.int32))
        # Mix high bits into low ones (float bit patterns differ mostly in the high bits), at the float's own width:
        # an arithmetic shift commutes with sign extension, so this equals mixing after widening to int64.
        bits = (bits ^ (bits >> 13)).long()
    else:
        bits = rows.long()
        bits = bits ^ (bits >> 13)
    key = (bits.shape[1], str(bits.device))
    weights = _WEIGHTS.get(key)
    if weights is None:
        g = torch.Generator().manual_seed(0x5EED)
        weights = torch.randint(-(2 ** 62), 2 ** 62, (bits.shape[1],), generator=g) * 2 + 1  # odd: invertible
        weights = _WEIGHTS[key] = weights.to(bits.device)
    # int64 arithmetic wraps around: a hash modulo 2^64, the same in any order of summation (a matrix-vector
    # product: one pass, no (B, F) product tensor).
    return torch.mv(bits, weights) if bits.device.type == "cpu" else (bits * weights).sum(dim=1)


def overlap(val: torch.Tensor, train: torch.Tensor) -> tuple[int, int, float]:
    """``(validation samples found in training, distinct validation samples, share of training samples that
    repeat within training)`` from fingerprints.

    >>> import torch
    >>> overlap(torch.tensor([1, 2, 3, 4]), torch.tensor([3, 4, 5, 5, 6]))
    (2, 4, 0.4)
    """
    val = torch.unique(val)
    train_unique, counts = torch.unique(train, return_counts=True)
    repeated = float(counts[counts > 1].sum()) / max(train.numel(), 1)
    found = int(torch.isin(val, train_unique).sum())
    return found, int(val.numel()), repeated

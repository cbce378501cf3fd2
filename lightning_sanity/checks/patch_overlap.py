"""Overlapping image patches split at random: validation patches that share a region of training patches, shifted.

Large images (slides, satellite scenes, mosaics) cut into overlapping patches (a sliding window whose stride is
below its size) and *then* split at random give most validation patches training neighbours on every side: the
same pixels, shifted. No whole patch repeats, so whole-sample fingerprints see nothing. The 2-D reading of
:mod:`.window_overlap`:

- **tiles**: each patch ``(C, H, W)`` is read as ``k x k`` tiles of exact pixel values (:func:`tile_size`: at least
  :data:`TILE_VALUES` values), hashed (int64); tiles of one value per channel (background, padding) say nothing and
  are dropped. Training patches keep the tiles of a grid of stride ``k`` (disjoint tiles), validation patches the
  tiles at every position, so a training tile inside a shared region meets its validation twin whatever the shift;
- **a real overlap is a large consistent match**: at one shift, at least two training tiles matched and at least
  half of the training tiles that say something inside the shared region;
- **chance must not explain it**: two grid tiles of one training patch coincide with probability ``q`` (repeated
  textures, rendered shapes; a patch does not overlap itself). ``m`` matches among ``n`` tiles have chance at most
  ``C(n, m) q^m``, which over the training patches and shifts compared must stay below :data:`ALPHA`;
- **the sides of the shift**: patches split by region (one part of each scene for validation) overlap at the
  boundary only, from one side. Patches split at random have training neighbours on both sides along every axis
  they are shifted on;
- **and objects that repeat are no overlap**: images of rendered shapes (the same square, glyph or marker in many
  images) match at one shift wherever two copies of the object meet, and those matches are not independent. The
  same comparison with each validation patch transposed measures them: shapes and the statistics of their tiles
  survive a transpose, the pixels of one scene do not. The verdict is the share of validation patches with
  neighbours on both sides, less that share among the transposed ones (``chance``).

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> scenes = torch.rand(6, 1, 48, 48, generator=g)
    >>> patches = scenes.unfold(2, 16, 4).unfold(3, 16, 4).permute(0, 2, 3, 1, 4, 5).reshape(-1, 1, 16, 16)
    >>> order = torch.randperm(len(patches), generator=g)
    >>> train, val = patches[order[:400]], patches[order[400:]]
    >>> found = judge(tile_hashes(train, grid=True), tile_hashes(val, grid=False), tile_size(1),
    ...               tile_hashes(val.transpose(2, 3), grid=False))
    >>> found["both"] > 0.5, found["chance"]
    (True, 0.0)
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Optional

import numpy as np
import torch

from lightning_sanity.checks.splits import hash_weights

#: values a tile holds at least (one channel: 5 x 5 tiles; three: 3 x 3).
TILE_VALUES = 24
#: images with more channels are not read as patches (feature maps, stacked frames).
MAX_CHANNELS = 4
#: patches larger than this (values) are not read (the validation tiles at every position cost ``k^2`` values each).
MAX_SAMPLE_VALUES = 16384
#: val-train tile pairs joined at most (host memory and a sort of them at the end of the first epoch).
MAX_PAIRS = 1 << 22
#: chance matches expected per validation patch, at most, for a match to count.
ALPHA = 0.01
_SEED = 0x51DE + 3


def tile_size(channels: int) -> int:
    """The side ``k`` of a tile: at least :data:`TILE_VALUES` values over ``channels``.

    >>> tile_size(1), tile_size(3)
    (5, 3)
    """
    return max(2, math.ceil(math.sqrt(TILE_VALUES / max(channels, 1))))


def readable(x: torch.Tensor) -> bool:
    """Whether batch ``x`` reads as image patches: ``(B, C, H, W)`` floats, at most :data:`MAX_CHANNELS` channels,
    each side at least three tiles long."""
    if not x.is_floating_point() or x.dim() != 4 or x.shape[0] == 0 or x[0].numel() > MAX_SAMPLE_VALUES:
        return False
    channels, height, width = x.shape[1:]
    return channels <= MAX_CHANNELS and min(height, width) >= 3 * tile_size(channels)


def tile_hashes(x: torch.Tensor, grid: bool) -> torch.Tensor:
    """``(B, Gy, Gx)`` int64 hashes of the ``k x k`` tiles of batch ``x``: on a grid of stride ``k`` (``grid``) or at
    every position; 0 where the tile holds one value. The hash is separable (channels, then rows, then columns, each
    with its own odd multipliers): ``C + 2k`` passes over the batch instead of ``C k^2``."""
    channels = x.shape[1]
    k = tile_size(channels)
    # +0.0 folds -0.0 onto 0.0: one value, two bit patterns
    bits = (x.detach().float() + 0.0).contiguous().view(torch.int32).long()
    w = hash_weights(channels + 2 * k, x.device, _SEED)
    pixels = bits[:, 0] * w[0]
    for c in range(1, channels):
        pixels += bits[:, c] * w[c]
    row_w, col_w = w[channels:channels + k], w[channels + k:]
    hashes = _box(_box(pixels, row_w, 2), col_w, 1)
    # A tile of one value v hashes to sum(row_w) * sum(col_w) * v (otherwise equal by a chance of 2^-64): nothing
    # to tell tiles apart (background, padding).
    flat = hashes == pixels[:, :hashes.shape[1], :hashes.shape[2]] * (row_w.sum() * col_w.sum())
    hashes = hashes.masked_fill_(flat, 0)
    return hashes[:, ::k, ::k] if grid else hashes


def _box(x: torch.Tensor, weights: torch.Tensor, dim: int) -> torch.Tensor:
    """``x[i] * weights[0] + x[i + 1] * weights[1] + ...`` along ``dim``, for each window of ``len(weights)``."""
    n = x.shape[dim] - len(weights) + 1
    out = x.narrow(dim, 0, n) * weights[0]
    for j in range(1, len(weights)):
        out += x.narrow(dim, j, n) * weights[j]
    return out


def _table(hashes: np.ndarray) -> tuple[np.ndarray, ...]:
    """Flattened (hash, patch, y, x) of the non-zero tiles, sorted by hash."""
    patch, y, x = np.nonzero(hashes)
    values = hashes[patch, y, x]
    order = np.argsort(values, kind="stable")
    return values[order], patch[order], y[order], x[order]


def chance(train: np.ndarray) -> float:
    """``log q``: the share of pairs of non-zero grid tiles of one training patch with one hash (``-inf`` when none
    coincide).

    >>> import numpy as np
    >>> round(math.exp(chance(np.array([[[1, 2], [1, 0]]]))), 3)
    0.333
    """
    patch, y, x = np.nonzero(train)
    if not patch.size:
        return -math.inf
    per_patch = np.bincount(patch)
    total = float((per_patch * (per_patch - 1) // 2).sum())
    hashes = train[patch, y, x]
    order = np.lexsort((hashes, patch))
    patch, hashes = patch[order], hashes[order]
    starts = np.flatnonzero(np.r_[True, (patch[1:] != patch[:-1]) | (hashes[1:] != hashes[:-1])])
    counts = np.diff(np.r_[starts, patch.size])
    same = float((counts * (counts - 1) // 2).sum())
    return math.log(same / total) if same and total else -math.inf


def _log_choose(n: np.ndarray, m: np.ndarray) -> np.ndarray:
    lgamma = np.vectorize(math.lgamma, otypes=[float])
    return lgamma(n + 1) - lgamma(m + 1) - lgamma(n - m + 1)


def judge(train: torch.Tensor, val: torch.Tensor, k: int,
          transposed: Optional[torch.Tensor] = None) -> Optional[dict[str, Any]]:
    """Shares of validation patches (``val``: :func:`tile_hashes` at every position) that overlap some training patch
    (``train``: on the grid) at all (``any``) and from both sides along each axis they are shifted on (``both``),
    and the same share of the ``transposed`` validation patches (``chance``, when given); None when there is
    nothing to compare or a join would be too large."""
    if train.dim() != 3 or not train.numel():
        return None
    t = train.cpu().numpy()
    # The training side is sorted once, and its coincidence rate read once if ever needed, for both comparisons.
    table, log_q = _table(t), functools.cache(lambda: chance(t))
    found = _shares(t, table, log_q, val, k)
    if found is not None and transposed is not None:
        null = _shares(t, table, log_q, transposed, k)
        if null is None:
            return None
        found["chance"] = null["both"]
    return found


def _shares(t: np.ndarray, table: tuple[np.ndarray, ...], log_q: Callable[[], float], val: torch.Tensor,
            k: int) -> Optional[dict[str, Any]]:
    if val.dim() != 3 or not val.numel():
        return None
    v = val.cpu().numpy()
    rows, (vy_max, vx_max) = v.shape[0], v.shape[1:]
    empty = {"any": 0.0, "both": 0.0, "patches": rows}
    t_hash, t_patch, t_y, t_x = table
    v_hash, v_patch, v_y, v_x = _table(v)
    left = np.searchsorted(t_hash, v_hash, side="left")
    counts = np.searchsorted(t_hash, v_hash, side="right") - left
    total = int(counts.sum())
    if total > MAX_PAIRS:
        return None
    if total == 0:
        return empty
    which = np.repeat(np.arange(v_hash.size), counts)
    index = np.arange(total) + np.repeat(left - np.cumsum(counts) + counts, counts)
    # val pixel p is training pixel p + d: d > 0 where the training patch starts earlier (above, to the left)
    dy, dx = t_y[index] * k - v_y[which], t_x[index] * k - v_x[which]
    keep = (dy != 0) | (dx != 0)  # the same position: a whole-patch copy, the other half of the check
    if not keep.any():
        return empty
    # one int64 per (val patch, training patch, shift): a sort of numbers, not of rows (dy + vy_max in [1, sy))
    sy, sx, nt = t.shape[1] * k + vy_max, t.shape[2] * k + vx_max, t.shape[0]
    key = ((v_patch[which][keep] * nt + t_patch[index][keep]) * sy + dy[keep] + vy_max) * sx + dx[keep] + vx_max
    packed, matched = np.unique(key, return_counts=True)
    groups = np.stack([packed // (sx * sy * nt), packed // (sx * sy) % nt, packed // sx % sy - vy_max,
                       packed % sx - vx_max], 1)
    # Training grid tiles that say something inside the shared region: a grid row a is shared when its twin row
    # a * k - dy is a validation tile row.
    said = np.zeros((t.shape[0], t.shape[1] + 1, t.shape[2] + 1))
    said[:, 1:, 1:] = (t != 0).cumsum(1).cumsum(2)
    gy, gx = groups[:, 2], groups[:, 3]
    a0 = np.clip(-(-gy // k), 0, t.shape[1])
    a1 = np.clip((vy_max - 1 + gy) // k + 1, 0, t.shape[1])
    b0 = np.clip(-(-gx // k), 0, t.shape[2])
    b1 = np.clip((vx_max - 1 + gx) // k + 1, 0, t.shape[2])
    p = groups[:, 1]
    common = said[p, a1, b1] - said[p, a0, b1] - said[p, a1, b0] + said[p, a0, b0]
    real = (matched >= 2) & (matched >= np.ceil(0.5 * common))
    if real.any() and log_q() > -math.inf:
        shifts = (2 * vy_max) * (2 * vx_max)
        log_chance = (_log_choose(np.maximum(common, matched), matched) + matched * log_q()
                      + math.log(t.shape[0] * shifts))
        real &= log_chance < math.log(ALPHA)
    groups = groups[real]
    if not groups.size:
        return empty
    partners = np.unique(groups[:, 0])
    surrounded = 0
    for patch in partners:  # validation patches with a real partner: few, once
        d = groups[groups[:, 0] == patch, 2:]
        sides = [(axis > 0).any() and (axis < 0).any() for axis in d.T if (axis != 0).any()]
        surrounded += all(sides)
    return {"any": partners.size / rows, "both": surrounded / rows, "patches": rows}

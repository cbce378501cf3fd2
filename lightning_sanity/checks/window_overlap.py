"""Overlapping windows split at random: validation windows that share long stretches of training windows, shifted.

Recordings cut into overlapping windows (HAR's 50 % overlap, a vibration recording's hop of a quarter window) and
*then* split at random give most validation windows a training neighbour on each side: the same measured values,
shifted in time. No whole sample repeats, so whole-sample fingerprints see nothing. What the run can know:

- **a shape signature per time step** that survives each window's own normalisation: the angle of consecutive
  differences ``atan2(x[t+1] - x[t], x[t] - x[t-1])`` per channel, in :data:`BINS` bins. It is unchanged by
  ``a * x + b`` with ``a > 0`` (per-window standardisation), exact for exact copies, and round-off (about 1e-7 of
  the values) moves a value across a bin edge with probability near 1e-5;
- **runs** of :func:`run_length` consecutive steps are hashed (int64, collisions about 2^-60); runs whose steps all
  share one signature (a straight line, padding, a constant) say nothing and are dropped;
- **a real overlap is a long consistent match**: a validation window and a training window that share the samples of
  a stretch match on *every* run of that stretch at one shift ``d`` (the training window starts ``d`` steps
  earlier). Coincidences of measured values match isolated runs; at least half the runs the shift leaves in common
  (and at least two) must match;
- **and chance must not explain it**: low-entropy inputs (values carried forward between sparse observations, 0/1
  masks, counters) give steps whose signatures encode little more than a discrete pattern, and unrelated windows
  then coincide over a few steps. :func:`chance` estimates from the training windows themselves how often two runs
  at different positions of one window coincide (``q``; a window does not overlap itself, so genuine copies do not
  inflate it) and how often such a coincidence goes on for one more step (``r``). A match of ``L`` steps in ``s``
  separate stretches has chance ``q^s * r^(L - s * k)``; over the training windows and shifts compared with each
  validation window, it must be expected by chance less than :data:`ALPHA` times. Measured values almost never
  coincide within a window (``q = 0``): the bar then is the run count above;
- **the sign of the shift**: a split in time (the last part of each series for validation) can overlap only at the
  boundary and on one side (training windows start earlier). Windows split at random overlap on both sides, for
  most validation windows. The verdict is the smaller of the two one-sided shares.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> series = torch.randn(20, 96, 2, generator=g)
    >>> windows = series.unfold(1, 32, 16).permute(0, 1, 3, 2).reshape(-1, 32, 2)  # 50 % overlap
    >>> order = torch.randperm(len(windows), generator=g)
    >>> train, val = windows[order[:80]], windows[order[80:]]
    >>> t, v = (window_runs(w, 1) for w in (train, val))
    >>> judge(t, v)["both"] > 0.3
    True
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch

from lightning_sanity.checks.splits import hash_weights

#: angle bins of the shape signature.
BINS = 32
#: measured values a run holds at least (runs of 3-channel data are 8 steps, of one channel 24).
RUN_VALUES = 24
#: samples longer than this (values) are not read as windows (the per-step cost stays a few kernels on small rows).
MAX_SAMPLE_VALUES = 16384
#: val-train run pairs joined at most (host memory at the end of the first epoch).
MAX_PAIRS = 1 << 24
#: chance matches expected per validation window, at most, for a match to count (a share far below the finding's).
ALPHA = 0.01
#: run comparisons :func:`chance` makes at most (windows times runs times shifts; the first windows, the nearest
#: shifts).
MAX_SELF_PAIRS = 1 << 25
#: seeds of the hash weights of one step's channels and of one run's steps
_STEP_SEED, _RUN_SEED = 0x51DE + 1, 0x51DE + 2


def run_length(channels: int) -> int:
    """Steps per run: at least :data:`RUN_VALUES` values, at least 4 steps."""
    return max(4, math.ceil(RUN_VALUES / max(channels, 1)))


def min_steps(channels: int) -> int:
    """Steps a window needs to be read: enough for three runs (``T - 2`` step signatures, ``T - 1 - run_length``
    runs), so that a neighbour shifted by one step still shares two, the fewest :func:`judge` accepts as an overlap.
    What neighbours share is set by the hop, not by the window: 48 hourly values cut every hour share 47, however
    short the window is next to a run (a 50 % overlap needs two runs in the shared half, about twice this length).

    >>> min_steps(1), min_steps(3), min_steps(8)
    (28, 12, 8)
    """
    return run_length(channels) + 4


def readings(x: torch.Tensor) -> list[int]:
    """The axes of batch ``x`` that may be time: ``(B, A, C)`` -> the axes of ``[1, 2]`` at least
    :func:`min_steps` long; anything else -> ``[]``: images, sets of sequences, and ``(B, T)``, which a table of
    features shares (a tabular MLP's first epoch paid about 0.9 ms a batch for it, and its columns are no time
    axis)."""
    if not x.is_floating_point() or x.dim() != 3 or x.shape[0] == 0:
        return []
    if x[0].numel() > MAX_SAMPLE_VALUES:
        return []
    return [axis for axis in (1, 2) if x.shape[axis] >= min_steps(x.shape[3 - axis])]


def step_signatures(x: torch.Tensor, axis: int) -> torch.Tensor:
    """``(B, T - 2)`` int64: one hash per time step (along ``axis``) of the binned difference angles of its
    channels."""
    z = x.detach().float()
    z = z.unsqueeze(-1) if z.dim() == 2 else (z if axis == 1 else z.transpose(1, 2))  # (B, T, C)
    d = z.diff(dim=1)
    angle = torch.atan2(d[:, 1:], d[:, :-1])  # in (-pi, pi]; atan2(0, 0) = 0
    bins = ((angle + math.pi) * (BINS / (2 * math.pi))).long().clamp_(0, BINS - 1)
    return (bins * hash_weights(bins.shape[-1], bins.device, _STEP_SEED)).sum(-1)


def run_hashes(steps: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, T')`` int64 hash of each run of ``k`` consecutive step signatures; 0 where every step of the run has
    one signature (nothing to tell runs apart)."""
    n = steps.shape[1] - k + 1
    if n <= 0:
        return steps.new_zeros(steps.shape[0], 0)
    w = hash_weights(k, steps.device, _RUN_SEED)
    out = steps[:, :n] * w[0]
    flat = torch.ones_like(out, dtype=torch.bool)
    for j in range(1, k):
        out += steps[:, j:j + n] * w[j]
        flat &= steps[:, j:j + n] == steps[:, :n]
    return out.masked_fill_(flat, 0)


def window_runs(x: torch.Tensor, axis: int) -> torch.Tensor:
    """The run hashes of batch ``x`` read with time along ``axis``."""
    channels = 1 if x.dim() == 2 else x.shape[3 - axis]
    return run_hashes(step_signatures(x, axis), run_length(channels))


def _table(runs: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened (hash, window, position) of the non-zero runs, sorted by hash."""
    h = runs.cpu().numpy()
    window, position = np.nonzero(h)
    values = h[window, position]
    order = np.argsort(values, kind="stable")
    return values[order], window[order], position[order]


def chance(train: np.ndarray) -> tuple[float, float]:
    """``(log q, log r)`` of the training runs ``(Nt, T')``: ``q``, the share of pairs of non-zero runs at different
    positions of one window with one hash; ``r``, the share of those that match at the next position too (one more
    step). ``-inf`` where none was seen.

    >>> h = np.array([[1, 2, 3, 1, 2, 4]])
    >>> [round(math.exp(v), 3) for v in chance(h)]
    [0.133, 0.5]
    """
    runs = train.shape[1]
    h = train[:max(1, MAX_SELF_PAIRS // max(runs * runs, 1))]
    shifts = min(runs, max(2, MAX_SELF_PAIRS // max(len(h) * runs, 1)))  # the nearest, in very long windows
    pairs = total = going_on = followed = 0
    for d in range(1, shifts):
        a, b = h[:, d:], h[:, :-d]
        both = (a != 0) & (b != 0)
        same = (a == b) & both
        pairs += int(same.sum())
        total += int(both.sum())
        followed += int(same[:, :-1].sum())
        going_on += int((same[:, :-1] & same[:, 1:]).sum())
    log = lambda n, m: math.log(n / m) if n else -math.inf  # noqa: E731
    return log(pairs, max(total, 1)), log(going_on, max(followed, 1))


def _by_chance(groups: np.ndarray, inverse: np.ndarray, position: np.ndarray, k: int, log_q: float,
               log_r: float, comparisons: int) -> np.ndarray:
    """Per group (one validation window, training window and shift), whether its matched runs (at validation
    ``position``) would arise by chance at least :data:`ALPHA` times in ``comparisons``."""
    if log_q == -math.inf:
        return np.zeros(len(groups), bool)
    order = np.lexsort((position, inverse))
    g, p = inverse[order], position[order]
    gap = np.diff(p, prepend=0)
    first = np.ones(g.size, bool)
    first[1:] = g[1:] != g[:-1]
    new_stretch = first | (gap > k)
    steps = np.where(new_stretch, k, np.minimum(gap, k))  # steps each run adds to its group's matched stretches
    stretches = np.bincount(g, weights=new_stretch, minlength=len(groups))
    length = np.bincount(g, weights=steps, minlength=len(groups))
    extra = length - stretches * k
    log_chance = stretches * log_q + np.where(extra > 0, extra * log_r, 0.0)
    return log_chance + math.log(comparisons) > math.log(ALPHA)


def judge(train: torch.Tensor, val: torch.Tensor, k: int = 4) -> Optional[dict[str, Any]]:
    """Shares of validation windows (rows of ``val``, run hashes ``(Nv, T')`` of ``k`` steps each) that overlap some
    training window (rows of ``train``) starting earlier (``before``), later (``after``), and ``both`` = the smaller
    of the two; None when there are no runs to compare or the join would be too large. ``k`` defaults to the
    shortest :func:`run_length` (the least strict chance bar)."""
    if train.dim() != 2 or val.dim() != 2 or train.shape[1] != val.shape[1] or not train.numel() or not val.numel():
        return None
    runs = train.shape[1]
    t_hash, t_win, t_pos = _table(train)
    v_hash, v_win, v_pos = _table(val)
    left = np.searchsorted(t_hash, v_hash, side="left")
    right = np.searchsorted(t_hash, v_hash, side="right")
    counts = right - left
    total = int(counts.sum())
    if total > MAX_PAIRS:
        return None
    rows = int(val.shape[0])
    if total == 0:
        return {"before": 0.0, "after": 0.0, "both": 0.0, "any": 0.0, "windows": rows, "runs": runs}
    which = np.repeat(np.arange(v_hash.size), counts)
    starts = np.repeat(left - np.cumsum(counts) + counts, counts)
    index = np.arange(total) + starts  # each val run's matching training entries
    vw, tw = v_win[which], t_win[index]
    shift = t_pos[index] - v_pos[which]  # > 0: the training window starts earlier
    keep = shift != 0  # the same position: a whole-sample copy, the other half of the check
    vw, tw, shift, vp = vw[keep], tw[keep], shift[keep], v_pos[which][keep]
    if not vw.size:
        return {"before": 0.0, "after": 0.0, "both": 0.0, "any": 0.0, "windows": rows, "runs": runs}
    key = np.stack([vw, tw, shift + runs], 1)
    groups, inverse, matched = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    common = runs - np.abs(groups[:, 2] - runs)  # runs the shift leaves in common
    real = matched >= np.maximum(2, np.ceil(0.5 * common))
    if real.any():
        log_q, log_r = chance(train.cpu().numpy())
        real &= ~_by_chance(groups, inverse.ravel(), vp, k, log_q, log_r, int(train.shape[0]) * 2 * (runs - 1))
    groups = groups[real]
    before = np.unique(groups[groups[:, 2] > runs, 0]).size / rows
    after = np.unique(groups[groups[:, 2] < runs, 0]).size / rows
    return {"before": before, "after": after, "both": min(before, after),
            "any": np.unique(groups[:, 0]).size / rows, "windows": rows, "runs": runs}

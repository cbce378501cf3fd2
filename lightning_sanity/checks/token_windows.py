"""Overlapping token windows split at random, for ``split-overlap``: validation windows whose first tokens are the last
tokens of a training window (and whose last tokens start another), at one overlap length.

A long document tokenised with ``return_overflowing_tokens=True, stride=s`` (HuggingFace) becomes windows that share
``s`` tokens with each neighbour: the last ``s`` tokens of one are the first ``s`` of the next. Split at random
*after* chunking, most validation windows have a sibling in training on each side. No whole window repeats, so
whole-sample fingerprints see nothing. What the run can know from the token ids alone:

- for each length ``n`` in :data:`MIN_LENGTH` .. half the window, a hash of each window's first ``n`` and last ``n``
  tokens (a polynomial hash modulo 2^64, collisions about 2^-60); a prefix or suffix of one repeated token (padding)
  says nothing and is left out;
- **one consistent overlap length**: sibling windows match at ``n = s`` only; a prefix of ``s + 1`` tokens reaches one
  token past the sibling's end, one of ``s - 1`` compares shifted tokens. Text that repeats (templates, a periodic
  synthetic grammar, a small vocabulary) matches at many lengths, and a chance match at one length is at least as
  likely at every shorter one: the peak is looked for above :data:`MIN_LENGTH`, and the largest one-sided share at
  any other length is the chance level subtracted from it;
- **both sides**: a split in time (the end of each document for validation) overlaps at its boundary only, on one
  side; windows split at random overlap on both, for most validation windows. The verdict is the smaller share.

Example::

    >>> g = torch.Generator().manual_seed(0)
    >>> docs = torch.randint(1, 5000, (40, 304), generator=g)
    >>> windows = torch.cat([docs[:, i:i + 64] for i in range(0, 241, 48)])  # stride 16
    >>> order = torch.randperm(len(windows), generator=g)
    >>> train, val = (edge_hashes(windows[order[k]], 32) for k in (slice(0, 200), slice(200, None)))
    >>> found = judge(*train, *val)
    >>> found["length"], found["both"] > 0.5, found["chance"]
    (16, True, 0.0)
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

#: the shortest prefix / suffix compared: shorter runs of tokens repeat by chance in any text.
MIN_LENGTH = 4
#: the longest compared (HuggingFace's overflow stride is usually 16-128).
MAX_LENGTH = 128
#: fewer validation windows than this make no share.
MIN_WINDOWS = 10
_MOD = 1 << 64
_BASE = 0x9E3779B97F4A7C15  # odd: invertible modulo 2^64
_MIX = 0xBF58476D1CE4E5B9 - _MOD  # as a signed int64


def _signed(values: list[int]) -> torch.Tensor:
    return torch.tensor([v - _MOD if v >= 1 << 63 else v for v in values], dtype=torch.int64)


_POWERS: dict[tuple[int, bool, str], torch.Tensor] = {}


def _powers(n: int, inverse: bool, device: torch.device) -> torch.Tensor:
    """``BASE**i`` (or its inverse's) modulo 2^64 for ``i < n``, as wrapped int64, made once per device."""
    key = (n, inverse, str(device))
    if key not in _POWERS:
        base = pow(_BASE, -1, _MOD) if inverse else _BASE
        out, value = [], 1
        for _ in range(n):
            out.append(value)
            value = value * base % _MOD
        _POWERS[key] = _signed(out).to(device)
    return _POWERS[key]


def max_length(width: int) -> int:
    """The longest prefix / suffix compared for windows ``width`` tokens wide (0: too narrow to read)."""
    longest = min(width // 2, MAX_LENGTH)
    return longest if longest >= MIN_LENGTH + 2 else 0


def edge_hashes(ids: torch.Tensor, longest: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(prefix, suffix)`` int64 hashes ``(B, L)`` of batch ``ids`` ``(B, T)``: column ``k`` hashes the first / last
    ``MIN_LENGTH + k`` tokens (``L = longest - MIN_LENGTH + 1``); 0 where those tokens are all one id."""
    x = ids.detach().long()
    width = x.shape[1]
    lengths = torch.arange(MIN_LENGTH, longest + 1, device=x.device)
    mixed = x * _MIX + 1  # wraps modulo 2^64: token 0 contributes too
    prefix_sums = (mixed * _powers(width, False, x.device)).cumsum(1)
    prefix = prefix_sums[:, lengths - 1]
    total = prefix_sums[:, -1:]
    suffix = (total - prefix_sums[:, width - lengths - 1]) * _powers(width, True, x.device)[width - lengths]
    flat_prefix = (x != x[:, :1]).long().cumsum(1)[:, lengths - 1] == 0
    flat_suffix = (x.flip(1) != x[:, -1:]).long().cumsum(1)[:, lengths - 1] == 0
    return prefix.masked_fill(flat_prefix, 0), suffix.masked_fill(flat_suffix, 0)


def _share(val: np.ndarray, train: np.ndarray) -> float:
    """Share of validation rows whose (non-zero) hash is among the training hashes."""
    train = train[train != 0]
    return float((np.isin(val, train) & (val != 0)).mean()) if train.size else 0.0


def judge(train_prefix: torch.Tensor, train_suffix: torch.Tensor, val_prefix: torch.Tensor,
          val_suffix: torch.Tensor) -> Optional[dict[str, Any]]:
    """The overlap length ``length`` whose two-sided share ``both`` of validation windows is largest, with its
    one-sided shares (``before``: the window's first tokens end a training window; ``after``: its last tokens start
    one) and ``chance``, the largest one-sided share at any other length; None without enough windows."""
    if val_prefix.shape[0] < MIN_WINDOWS or not train_prefix.numel() or train_prefix.shape[1] != val_prefix.shape[1]:
        return None
    tp, ts, vp, vs = (t.cpu().numpy() for t in (train_prefix, train_suffix, val_prefix, val_suffix))
    before = np.array([_share(vp[:, k], ts[:, k]) for k in range(vp.shape[1])])
    after = np.array([_share(vs[:, k], tp[:, k]) for k in range(vp.shape[1])])
    both = np.minimum(before, after)
    # A chance match of n tokens is at least as likely at every shorter length: the shortest is never the peak, only
    # the chance level for the others (a real overlap of s tokens is not found at s - 1).
    peak = int(both[1:].argmax()) + 1
    others = np.delete(np.maximum(before, after), peak)
    # Text built of fixed blocks (motifs, templates of n tokens) matches at n on the same side too: windows begin
    # with the blocks other windows begin with. A sibling's overlap joins one window's end to another's start only.
    same = min(_share(vp[:, peak], tp[:, peak]), _share(vs[:, peak], ts[:, peak]))
    chance = max(float(others.max()) if others.size else 0.0, same)
    return {"length": peak + MIN_LENGTH, "before": float(before[peak]), "after": float(after[peak]),
            "both": float(both[peak]), "chance": chance, "windows": int(vp.shape[0])}

"""A model input that holds each label at an earlier position: pure functions for ``target-leakage``; the glue is
:mod:`lightning_sanity.callbacks._lagged_targets`.

Teacher forcing cuts the decoder input and the labels from one target sequence, ``dec_in = tgt[:, :-1]`` and
``labels = tgt[:, 1:]``: the label at position ``k`` is the decoder input at ``k + 1``, which a causal decoder has
not read yet. With the two slices swapped (``dec_in = tgt[:, 1:]``, ``labels = tgt[:, :-1]``) the label at ``k`` is
the decoder input at ``k - 1``, which it has: it copies the answer. :func:`earlier_copy` finds a shift ``s``
(1 to :data:`MAX_SHIFT`) at which the label at ``k`` equals the input at ``k - s`` at nearly every supervised
position (:data:`NEARLY_ALL`), far beyond chance.

Chance is what the values give without the leak, the largest of three estimates: another sample's input at the
same shift (token frequencies per position: padding, an end token at the same place); the labels' own repeats at
lags 1 to ``MAX_SHIFT + 1``, and the input's (a correctly shifted decoder input at ``k - s`` holds the label at
``k - s - 1``, so on a sequence that repeats its tokens it agrees with the label as often as the labels repeat);
and one over the number of distinct label values. The agreement counted over ``n`` positions must be unlikely
under that chance (a Chernoff bound on the binomial tail, below :data:`CHANCE` over the shifts tried).

Which input may be tested, and whether the model reads it at the earlier position, is the glue's: a delayed-recall
task (``label[t] = x[t - 3]`` of its only input) is this pattern by design.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> tgt = torch.randint(3, 23, (16, 12), generator=g)
    >>> earlier_copy(tgt[:, :-1], tgt[:, 1:])["shift"]   # slices swapped: the label at k is the input at k - 1
    1
    >>> earlier_copy(tgt[:, 1:], tgt[:, :-1]) is None      # teacher forcing: the label at k is the input at k + 1
    True
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from lightning_sanity.checks.leakage import IGNORED

#: Shifts tried: a slice swap gives 1; an off-by-more cut (``tgt[:, 2:]``) a few more. Longer shifts are memory
#: tasks more often than slips.
MAX_SHIFT = 3
#: Share of the supervised positions (from ``s`` on) at which the earlier input must hold the label: "nearly every
#: position" (a few may differ: an end token cut differently, a padding value that is not ``ignore_index``).
NEARLY_ALL = 0.9
#: Supervised positions compared at least: fewer are no evidence of "nearly every position".
MIN_POSITIONS = 32
#: Level of the chance bound, over all shifts tried (the permutation-test level of the other target-leakage scans).
CHANCE = 1e-3


def _share(a: torch.Tensor, b: torch.Tensor, used: torch.Tensor) -> float:
    count = int(used.sum())
    return float(((a == b) & used).sum()) / count if count else 0.0


def chance_agreement(labels: torch.Tensor, source: torch.Tensor, shift: int) -> float:
    """How often the label at ``k`` would equal ``source`` at ``k - shift`` without a leak (module docstring)."""
    used = labels >= IGNORED
    lab, later = labels[:, shift:], used[:, shift:]
    rows = labels.shape[0]
    values = torch.unique(labels[used])
    shares = [1.0 / max(int(values.numel()), 1)]
    for roll in range(1, min(rows, 4)):  # another sample's input at the same shift
        shares.append(_share(lab, source.roll(roll, 0)[:, : source.shape[1] - shift], later))
    for lag in range(1, MAX_SHIFT + 2):  # the sequences' own repeats
        if lag < labels.shape[1]:
            both = used[:, lag:] & used[:, :-lag]
            shares.append(_share(labels[:, lag:], labels[:, :-lag], both))
            shares.append(_share(source[:, lag:], source[:, :-lag], used[:, lag:]))
    return max(shares)


def log10_tail(agree: int, count: int, chance: float) -> float:
    """``log10`` of a Chernoff bound on the chance of ``agree`` or more hits in ``count`` draws of probability
    ``chance``: ``exp(-count * KL(agree / count || chance))``; 0 when the share is not above chance.

    >>> round(log10_tail(100, 100, 0.5), 1), log10_tail(40, 100, 0.5)
    (-30.1, 0.0)
    """
    share = agree / max(count, 1)
    if share <= chance or chance <= 0:
        return 0.0 if share <= chance else -math.inf
    kl = share * math.log(share / chance)
    if share < 1:
        kl += (1 - share) * math.log((1 - share) / (1 - chance))
    return -count * kl / math.log(10)


def earlier_copy(labels: torch.Tensor, source: torch.Tensor) -> Optional[dict[str, Any]]:
    """The smallest shift ``s`` (1 to :data:`MAX_SHIFT`) at which integer ``labels`` ``(B, T)`` (negative:
    ignored) equal ``source`` ``(B, T)`` at ``s`` positions earlier, at :data:`NEARLY_ALL` of the supervised
    positions from ``s`` on and beyond chance, as ``{"shift", "share", "chance", "positions", "log10_chance"}``;
    else None."""
    if (labels.dim() != 2 or labels.shape != source.shape or labels.is_floating_point()
            or source.is_floating_point() or labels.dtype == torch.bool or labels.shape[1] < 2):
        return None
    labels, source = labels.detach().long().cpu(), source.detach().long().cpu()
    used = labels >= IGNORED
    for shift in range(1, min(MAX_SHIFT, labels.shape[1] - 1) + 1):
        later = used[:, shift:]
        count = int(later.sum())
        if count < MIN_POSITIONS:
            continue
        agree = int(((labels[:, shift:] == source[:, :-shift]) & later).sum())
        if agree < NEARLY_ALL * count:
            continue
        chance = chance_agreement(labels, source, shift)
        bound = log10_tail(agree, count, chance) + math.log10(MAX_SHIFT)
        if bound < math.log10(CHANCE):
            return {"shift": shift, "share": agree / count, "chance": chance, "positions": count,
                    "log10_chance": bound}
    return None

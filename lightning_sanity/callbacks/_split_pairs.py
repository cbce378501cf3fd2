"""``split-overlap`` on (input, target) pairs, for data whose input alone is no sample's identity.

When the input is an id that many samples share (a user id in a recommender's ``(user, item, negative)`` triples,
a query id in ranking), training repeats its own inputs nearly always, and input fingerprints cannot tell a leaked
validation sample from a fresh one: the check passes with "training repeats 100 % of its own samples". The sample
is then the input *with* its target: a user's held-out click ``(user, item)`` that is also one of the training pairs
is the leak (the zoo's ``bug_bpr_recommender_val_click_left_in_train_pairs``); a correct leave-one-out split shares
no pair. The pairs are judged the same way as the inputs (the share of validation pairs found in training beyond the
training pairs' own repetition rate), and only when the inputs alone could not be judged.

Distinct observations can form the same pair by chance: a validation user whose item is one of the items the same
user has in training, drawn independently of them (ids mapped to other users in one split, a (user, item) grid dense
enough to be hit). :func:`pair_chance` bounds how many validation pairs meet a training pair that way: copies meet
their training pair every time, coincidences at the rate of the target prior (the same idea as
``label-distribution``'s identical inputs whose labels agree at chance, :mod:`..checks.duplicate_labels`).

Cost: per training batch of the first epoch, a copy of the target's sampled values (hashed a block at a time); per
validation batch of the first validation run, one hash of the target (a few values per sample, on the device);
combined with the input's hash once both are read.

Example::

    >>> import torch
    >>> p = PairPrints()
    >>> p.add("train", torch.tensor([1, 1, 2]))
    >>> p.read("train").shape
    torch.Size([3])
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from lightning_sanity.callbacks._row_blocks import RowBlocks
from lightning_sanity.callbacks._target_copies import dense_target
from lightning_sanity.checks import splits as S

#: An odd 64-bit multiplier (2^64 / golden ratio): the pair's hash ``input * K + target`` modulo 2^64.
_MIX = -7046029254386353131


def pair_hashes(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """One int64 hash per (input, target) pair from their fingerprints (aligned, one per sample).

    >>> a, b = torch.tensor([3, 3, 4]), torch.tensor([7, 8, 7])
    >>> h = pair_hashes(a, b)
    >>> len(set(h.tolist()))
    3
    """
    return inputs.long() * _MIX + targets.long().to(inputs.device)


class PairPrints:
    """The targets' fingerprints per split, aligned with the inputs' (stopped for good when a target is missing).
    Training's carry the hashes of the two halves too (``(N, 3)``), for the coincidence bound of dense targets
    (:mod:`._target_copies`); ``dense`` is read on the first training target."""

    def __init__(self) -> None:
        self.targets: dict[str, RowBlocks] = {"train": RowBlocks(halves=True), "val": RowBlocks(halves=False)}
        self.usable = True
        self.dense: Optional[bool] = None

    def add(self, split: str, target: Any, samples: Optional[int] = None) -> None:
        if not self.usable:
            return
        if not isinstance(target, torch.Tensor) or target.dim() == 0 or (
                samples is not None and int(target.shape[0]) != samples):
            self.usable = False
            for blocks in self.targets.values():
                blocks.clear()
            return
        if split == "train" and self.dense is None:
            self.dense = dense_target(target)
        self.targets[split].add(target)

    def read(self, split: str) -> Optional[torch.Tensor]:
        """One hash per sample (``(N,)``), or None."""
        hashes = self.read_all(split)
        return hashes[:, 0] if hashes is not None and hashes.dim() == 2 else hashes

    def read_all(self, split: str) -> Optional[torch.Tensor]:
        """Training's ``(N, 3)`` hashes (all values, the two halves); validation's ``(M,)``."""
        return self.targets[split].hashes() if self.usable else None


def judge_pairs(train_inputs: torch.Tensor, val_inputs: torch.Tensor, train_targets: Optional[torch.Tensor],
                val_targets: Optional[torch.Tensor]) -> Optional[tuple[int, int, float]]:
    """``overlap`` of the (input, target) pairs, or None when the targets do not line up with the inputs."""
    if train_targets is None or val_targets is None:
        return None
    if train_targets.shape[0] != train_inputs.shape[0] or val_targets.shape[0] != val_inputs.shape[0]:
        return None
    return S.overlap(pair_hashes(val_inputs, val_targets), pair_hashes(train_inputs, train_targets))


def pair_chance(train_inputs: torch.Tensor, train_targets: torch.Tensor, val_inputs: torch.Tensor,
                val_targets: torch.Tensor) -> tuple[float, float]:
    """``(expected, sd)`` of the distinct validation pairs found among the training pairs if each validation
    target were drawn from the training targets' prior ``p``, independently of the training pairs: a validation
    pair whose input has the distinct targets ``T`` in training meets one with probability ``sum_{t in T} p_t``
    (0 for an input training lacks); the pairs add up as independent Bernoulli draws. Continuous targets never
    coincide (each value its own, ``p = 1 / N``): their matches are copies.

    >>> tr_in, tr_tg = torch.tensor([1, 1, 2, 2]), torch.tensor([5, 6, 5, 7])
    >>> pair_chance(tr_in, tr_tg, torch.tensor([1, 3]), torch.tensor([5, 5]))
    (0.75, 0.4330127018922193)
    """
    train_inputs, train_targets = train_inputs.long().cpu(), train_targets.long().cpu()
    val_pairs = torch.unique(torch.stack([val_inputs.long().cpu(), val_targets.long().cpu()], 1), dim=0)
    _, target_index, counts = torch.unique(train_targets, return_inverse=True, return_counts=True)
    prior = counts.double() / max(train_targets.numel(), 1)
    # Distinct training pairs: the prior mass of each input's distinct targets, summed per input.
    pairs = torch.unique(torch.stack([train_inputs, target_index], 1), dim=0)
    inputs, input_index = torch.unique(pairs[:, 0], return_inverse=True)
    if not inputs.numel() or not val_pairs.numel():
        return 0.0, 0.0
    mass = torch.zeros(inputs.numel(), dtype=torch.float64).index_add_(0, input_index, prior[pairs[:, 1]])
    at = torch.searchsorted(inputs, val_pairs[:, 0].contiguous()).clamp(max=inputs.numel() - 1)
    q = torch.where(inputs[at] == val_pairs[:, 0], mass[at].clamp(max=1.0), torch.zeros((), dtype=torch.float64))
    return float(q.sum()), math.sqrt(float((q * (1 - q)).sum()))

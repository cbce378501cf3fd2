"""``split-overlap``'s undirected pairs split as directed rows: a validation pair ``(u, v)`` whose reverse ``(v, u)``
is a training pair.

A graph library stores an undirected edge list in both directions (PyG's ``to_undirected``), and a split drawn over
the rows of that list leaves the other direction of nearly every validation edge among the training positives: a
symmetric scorer (a dot product of node embeddings) scores the two alike, and validation measures memory. No
validation pair is itself a training pair, so the pair fingerprints see nothing.

The evidence, all from the pairs the two splits hold (``(B, 2)`` integer ids):

- the pairs are stored symmetrically: at least :data:`SYMMETRIC` of the distinct pairs of both splits together
  (self-pairs aside) have their reverse among them. A directed graph (citations, follows) has reciprocal edges too,
  but not nearly all; a healthy split of a symmetric list keeps both directions of a pair on one side;
- the validation pairs' reverses are training pairs far more often than chance: a pair drawn independently of
  training meets a training pair at the training pairs' density among all ordered pairs of the ids seen (a grid of
  every pair, such as all operand pairs of a modular arithmetic table, is dense: its reverses meet training by
  themselves), and no more often than the validation pairs themselves do.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> u = torch.randperm(10_000, generator=g)[:400]
    >>> edges = torch.stack([u // 100, u % 100], 1)
    >>> edges = edges[edges[:, 0] != edges[:, 1]]
    >>> both = torch.cat([edges, edges.flip(1)])[torch.randperm(2 * len(edges), generator=g)]
    >>> found = judge_reversed(both[80:], both[:80])
    >>> found["share"] > 0.7, found["chance"] < 0.2
    (True, True)
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

# The chance rate's sampling noise is added at the duplicate-labels test's 3 sigma: one "beyond chance" for the data
# checks.
from lightning_sanity.checks.duplicate_labels import CHANCE_SIGMAS

#: Share of the distinct pairs (both splits) whose reverse is also a pair, for "stored in both directions": an
#: undirected list stored twice has every reverse; directed graphs' reciprocity stays well below.
SYMMETRIC = 0.99
#: Distinct validation pairs needed: fewer cannot show a share.
MIN_PAIRS = 20


def pair_ids(x: Any) -> bool:
    """Whether batch input ``x`` is ``(B, 2)`` integer ids: pairs of items (graph edges, item pairs)."""
    return (isinstance(x, torch.Tensor) and x.dim() == 2 and x.shape[1] == 2 and x.shape[0] > 0
            and not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool)


def judge_reversed(train: torch.Tensor, val: torch.Tensor) -> Optional[dict[str, Any]]:
    """How many distinct validation pairs have their reverse among the training pairs, against chance; None when
    the pairs are not stored symmetrically or too few. ``train``, ``val``: ``(N, 2)`` integer ids."""
    train, val = train.long().cpu(), val.long().cpu()
    train, val = train[train[:, 0] != train[:, 1]], val[val[:, 0] != val[:, 1]]
    if train.shape[0] < 2 or val.shape[0] < MIN_PAIRS:
        return None
    # Ids ranked among those seen, so that a pair's key id_u * n + id_v fits any id range.
    ids, ranks = torch.unique(torch.cat([train, val]).reshape(-1), return_inverse=True)
    n = int(ids.numel())
    ranks = ranks.reshape(-1, 2)
    keys = ranks[:, 0] * n + ranks[:, 1]
    reverse = ranks[:, 1] * n + ranks[:, 0]
    t = train.shape[0]
    train_keys = torch.unique(keys[:t])
    val_keys, first = torch.unique(keys[t:], return_inverse=True)
    if val_keys.numel() < MIN_PAIRS:
        return None
    union = torch.unique(keys)
    union_rev = torch.unique(reverse)
    symmetric = float(torch.isin(union_rev, union).float().mean())
    if symmetric < SYMMETRIC:
        return None
    val_rev = torch.zeros_like(val_keys).scatter_(0, first, reverse[t:])
    reversed_found = int(torch.isin(val_rev, train_keys).sum())
    forward = int(torch.isin(val_keys, train_keys).sum())
    m = int(val_keys.numel())
    density = min(1.0, train_keys.numel() / max(n * (n - 1), 1))
    chance = min(1.0, max(density + CHANCE_SIGMAS * math.sqrt(density * (1 - density) / m), forward / m))
    return {"pairs": m, "reversed": reversed_found, "share": reversed_found / m, "forward": forward,
            "density": density, "chance": chance, "symmetric": symmetric, "training_pairs": int(train_keys.numel())}

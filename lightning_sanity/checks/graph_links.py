"""Link prediction scored on edges the model's graph already holds: part of ``target-leakage``, as pure functions.

A link predictor (a GAE, a GCN link model) propagates messages over a graph it holds (an adjacency buffer, an
``edge_index``) and is scored on node pairs with 0/1 labels: held-out edges against non-edges. If the held-out
edges were left in the graph it propagates over (the adjacency built from the whole edge list before the split),
the two ends of each validation edge average each other's features and the score reads the answer from the input.

What the run can know, at the first validation batch: the pairs ``(M, 2)`` (or ``(2, M)``) and their labels, and
every square ``(N, N)`` tensor or integer ``(2, E)`` edge list the module holds (buffers and plain tensor
attributes) that covers the pairs' node ids. Whether each pair is an edge of that graph is a 0/1 feature of the
pair; it fires when (a) at least half of the positive pairs are edges of the graph (the answer is in the input),
and (b) membership separates positives from negatives beyond chance: Fisher's exact test (one-sided, the
hypergeometric tail of the edges among the positives given the edges among all pairs) below :data:`CHANCE`.
Held out correctly, no validation positive is in the graph; an edge-type classifier (both classes are edges)
shows no separation.

Example::

    >>> import torch
    >>> adj = torch.zeros(6, 6); adj[0, 1] = adj[2, 3] = adj[4, 5] = 1
    >>> pairs = torch.tensor([[0, 1], [2, 3], [4, 5], [0, 2], [1, 4], [3, 5]]).repeat(4, 1)
    >>> labels = torch.tensor([1, 1, 1, 0, 0, 0]).repeat(4)
    >>> v = graph_leak(pairs, labels, adj)
    >>> v["positives_in_graph"], v["negatives_in_graph"]
    (12, 0)
    >>> graph_leak(pairs, labels, torch.zeros(6, 6)) is None
    True
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from lightning_sanity.checks.leakage import CHANCE_COLUMN, log_partition_chance

#: The level of the one-sided Fisher test: the label-column scan's.
CHANCE = CHANCE_COLUMN
#: Pairs needed before a test means anything.
MIN_PAIRS = 8


def pairs_and_labels(parts: list[torch.Tensor]) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """The batch's node pairs ``(M, 2)`` (integer) and 0/1 labels ``(M,)``, or ``None``."""
    labels = [t for t in parts if t.dim() in (1, 2) and (t.dim() == 1 or t.shape[1] == 1) and t.numel() >= MIN_PAIRS]
    for t in parts:
        if t.dtype in (torch.bool,) or t.is_floating_point() or t.is_complex() or t.dim() != 2 or 2 not in t.shape:
            continue
        pairs = t if t.shape[1] == 2 else t.T
        for y in labels:
            y = y.reshape(-1)
            if y is t or y.numel() != pairs.shape[0]:
                continue
            values = torch.unique(y.detach())
            if values.numel() == 2 and bool(((values == 0) | (values == 1)).all()):
                return pairs.detach(), y.detach()
    return None


def membership(pairs: torch.Tensor, graph: torch.Tensor, nodes: int) -> Optional[torch.Tensor]:
    """Whether each pair (either direction) is an edge of ``graph``: a square ``(N, N)`` matrix (non-zero entries)
    or an integer ``(2, E)`` edge list; ``None`` when ``graph`` is neither or does not cover the pairs' nodes."""
    i, j = pairs[:, 0].long(), pairs[:, 1].long()
    if graph.dim() == 2 and graph.shape[0] == graph.shape[1] and graph.shape[0] >= nodes and not graph.is_sparse:
        g = graph.detach()
        return (g[i, j] != 0) | (g[j, i] != 0)
    if graph.dim() == 2 and graph.shape[0] == 2 and not graph.is_floating_point() and graph.dtype != torch.bool:
        e = graph.detach().long()
        if e.numel() == 0 or int(e.max()) < nodes - 1:
            return None
        n = int(e.max()) + 1
        keys = torch.cat([e[0] * n + e[1], e[1] * n + e[0]])
        return torch.isin(i * n + j, keys)
    return None


def fisher_one_sided(a: int, b: int, c: int, d: int) -> float:
    """P(at least ``a`` edges among the positives) for the 2x2 table [[a, b], [c, d]] (rows: positive, negative;
    columns: in the graph, not) with its margins fixed: the hypergeometric tail.

    >>> round(fisher_one_sided(3, 0, 0, 3), 4)  # 1 / C(6, 3)
    0.05
    """
    pos, edges, n = a + b, a + c, a + b + c + d
    # log C(m, k) = -log_partition_chance([k, m - k]), the counting behind the label-column scan's bound
    total = -log_partition_chance([pos, n - pos])
    tail = 0.0
    for k in range(a, min(pos, edges) + 1):
        if pos - k <= n - edges:
            chosen = log_partition_chance([k, edges - k]) + log_partition_chance([pos - k, n - edges - pos + k])
            tail += math.exp(-chosen - total)
    return min(1.0, tail)


def graph_leak(pairs: torch.Tensor, labels: torch.Tensor, graph: torch.Tensor,
               chance: float = CHANCE) -> Optional[dict[str, Any]]:
    """The evidence that ``graph`` holds the positive pairs it is scored on, or ``None``."""
    keep = pairs[:, 0] != pairs[:, 1]  # a self-loop is in any graph with self-loops
    pairs, labels = pairs[keep], labels.reshape(-1)[keep]
    if pairs.shape[0] < MIN_PAIRS or int(pairs.min()) < 0:
        return None
    nodes = int(pairs.max()) + 1
    inside = membership(pairs.to(graph.device), graph, nodes)
    if inside is None:
        return None
    inside, positive = inside.cpu(), labels.cpu() == 1
    a, b = int((inside & positive).sum()), int((~inside & positive).sum())
    c, d = int((inside & ~positive).sum()), int((~inside & ~positive).sum())
    if a == 0 or 2 * a < a + b:
        return None  # most positives are not in the graph: held out
    p = fisher_one_sided(a, b, c, d)
    if p >= chance:
        return None
    return {"positives_in_graph": a, "positives": a + b, "negatives_in_graph": c, "negatives": c + d,
            "chance": p, "nodes": int(graph.shape[-1]) if graph.shape[0] != 2 else nodes}

"""Graph batches (many small graphs collated into one): edges that join two graphs, the pure function behind
``batch-mixing``'s ``cross-graph-edges`` pattern, and one row of hashes per graph, what ``split-overlap``
fingerprints for such batches (:func:`graph_rows`).

A graph batch in the PyG layout holds every graph's nodes concatenated, an ``edge_index`` ``(2, E)`` of node indices
into that concatenation, and a ``batch`` vector ``(N,)`` giving each node's graph. Collating shifts each graph's
``edge_index`` by the number of nodes before it, so an edge never joins two graphs: the rule is exact, with no
threshold. Without the shift every graph's edges land on the first graph's nodes, and messages flow between
samples (the prediction for a molecule depends on which molecules share its batch).

Example::

    >>> import torch
    >>> node_graph = torch.tensor([0, 0, 0, 1, 1])
    >>> cross_graph_edges(torch.tensor([[0, 1, 3], [1, 2, 4]]), node_graph) is None
    True
    >>> cross_graph_edges(torch.tensor([[0, 1, 0], [1, 2, 4]]), node_graph)["cross"]
    1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch

from lightning_sanity.checks.splits import fingerprints


def _field(batch: Any, key: str) -> Any:
    try:
        return batch.get(key) if isinstance(batch, Mapping) else getattr(batch, key, None)
    except Exception:  # objects whose attribute access raises
        return None


def edge_index_of(batch: Any) -> Optional[torch.Tensor]:
    """The ``(2, E)`` integer ``edge_index`` of a graph batch (a dict, or an object with that attribute), or None."""
    edge_index = _field(batch, "edge_index")
    if not isinstance(edge_index, torch.Tensor) or edge_index.is_floating_point() or edge_index.dim() != 2 \
            or edge_index.shape[0] != 2:
        return None
    return edge_index


def graph_batch_parts(batch: Any) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """``(edge_index, node_graph)`` of a PyG-style graph batch (a dict, or an object with those attributes), or None."""
    edge_index, node_graph = edge_index_of(batch), _field(batch, "batch")
    if edge_index is None or not isinstance(node_graph, torch.Tensor):
        return None
    if node_graph.is_floating_point() or node_graph.dim() != 1 or node_graph.numel() == 0:
        return None
    return edge_index, node_graph


def _mix(v: torch.Tensor) -> torch.Tensor:
    # int64 arithmetic wraps around: an avalanche of the bits modulo 2^64, as in the suite's row hashes.
    v = v ^ (v >> 31)
    return v * -7046029254386353131


def graph_rows(node_prints: torch.Tensor, edge_index: torch.Tensor, node_graph: torch.Tensor) -> torch.Tensor:
    """``(G, 2)`` int64 per graph of a batch: hashes of its nodes' fingerprints at their positions in the graph and
    of its edges between those positions, one column for the even positions (and the edges leaving them), one for
    the odd. A graph's copy, collated at another offset in another batch, gets the same row; the batch's node rows
    alone would not do (atoms of a handful of kinds repeat in every molecule). Each column holds half of the graph,
    so that two distinct graphs agreeing on one of them measures how often graphs coincide
    (:func:`~lightning_sanity.checks.splits.coincidence_share`).

    >>> import torch
    >>> prints = torch.tensor([7, 8, 9, 7, 8, 9])  # two copies of a 3-node graph
    >>> rows = graph_rows(prints, torch.tensor([[0, 1, 3, 4], [1, 2, 4, 5]]), torch.tensor([0, 0, 0, 1, 1, 1]))
    >>> bool((rows[0] == rows[1]).all())
    True
    >>> bonds = graph_rows(prints, torch.tensor([[0, 1, 3, 3], [1, 2, 4, 5]]), torch.tensor([0, 0, 0, 1, 1, 1]))
    >>> bool((bonds[0] == bonds[1]).all())  # the same atoms, other bonds
    False
    """
    node_graph = node_graph.long()
    n = int(node_graph.shape[0])
    graphs = int(node_graph.max()) + 1
    order = torch.arange(n, device=node_graph.device)
    first = torch.full((graphs,), n, dtype=torch.long, device=node_graph.device)
    first = first.scatter_reduce(0, node_graph, order, "amin")
    local = order - first[node_graph]
    slot = node_graph * 2 + local % 2  # (graph, parity of the position)
    rows = torch.zeros(graphs * 2, dtype=torch.long, device=node_graph.device)
    rows.index_add_(0, slot, _mix(node_prints.long() + _mix(local + 1)))
    e = edge_index.long().clamp(0, n - 1)
    rows.index_add_(0, slot[e[0]], _mix(local[e[0]] * 0x5851F42D4C957F2D + _mix(local[e[1]] + 7)))
    return rows.view(graphs, 2)


def edge_counts(edge_index: torch.Tensor, node_graph: torch.Tensor) -> torch.Tensor:
    """``(cross, outside, edges)`` as an int64 tensor on the edges' device (no sync): edges joining two graphs,
    edges pointing past the batch's nodes, all edges."""
    e = edge_index.detach().long()
    nodes = int(node_graph.shape[0])
    if e.numel() == 0:
        return torch.zeros(3, dtype=torch.long, device=e.device)
    outside = ((e < 0) | (e >= nodes)).any(0)
    ends = node_graph.detach().long().to(e.device)[e.clamp(0, nodes - 1)]
    cross = (ends[0] != ends[1]) & ~outside
    return torch.stack([cross.sum(), outside.sum(), torch.tensor(e.shape[1], device=e.device)])


def cross_graph_edges(edge_index: torch.Tensor, node_graph: torch.Tensor) -> Optional[dict[str, Any]]:
    """Figures when some edge joins nodes of two graphs (or points past the batch's nodes), else None."""
    cross, outside, edges = (int(v) for v in edge_counts(edge_index, node_graph).cpu())
    if cross == 0 and outside == 0:
        return None
    return {"cross": cross, "outside": outside, "edges": edges}


def dense_adjacency(batch: Any, x: torch.Tensor) -> Optional[torch.Tensor]:
    """The ``(B, n, n)`` adjacency of a batch of dense graphs beside node features ``x`` (``(B, n, F)``), or None.

    A batch tensor of that shape, symmetric, whose node degrees differ within at least half of the samples: a
    molecule's bonds, not a padding mask (every real token joined to every other) or a causal mask (not symmetric).
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[1] < 3:
        return None
    items = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else ()
    for a in items:
        if not isinstance(a, torch.Tensor) or a is x or a.shape != (x.shape[0], x.shape[1], x.shape[1]):
            continue
        a = a.detach()
        if a.is_complex() or not torch.equal(a, a.transpose(1, 2)):
            continue
        degrees = (a != 0).sum(2)  # padding nodes (no edge at all) left out: a padding mask joins all real ones
        lowest = torch.where(degrees > 0, degrees, degrees.amax(1, keepdim=True)).amin(1)
        if (degrees.amax(1) > lowest).float().mean() >= 0.5:
            return a
    return None


def dense_graph_rows(x: torch.Tensor, adjacency: torch.Tensor, rounds: int = 2) -> torch.Tensor:
    """``(B, 2)`` int64 per graph of a dense batch, the same for every order of its nodes: ``rounds`` of
    Weisfeiler-Lehman refinement (each node's hash mixed with the sum of its neighbours' and of the edge values),
    then the nodes' hashes summed, one column for the nodes whose hash is even, one for the odd (halves for the
    coincidence bound, as in :func:`graph_rows`). Molecules exported with their atoms in another order are the same
    sample; isomers (the same atoms, bonded otherwise) are not.

    >>> import torch
    >>> x = torch.eye(3)[torch.tensor([[0, 1, 1, 2]])].float()
    >>> a = torch.tensor([[[0., 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]]])
    >>> p = torch.tensor([3, 1, 0, 2])
    >>> bool((dense_graph_rows(x, a) == dense_graph_rows(x[:, p], a[:, p][:, :, p])).all())
    True
    """
    b, n = int(x.shape[0]), int(x.shape[1])
    h = fingerprints(x.detach().reshape(b * n, -1)).view(b, n)
    edges = adjacency.to(torch.float64).view(torch.int64)  # the exact bits of each edge's value
    on = (adjacency != 0).long()
    for _ in range(rounds):
        h = _mix(h * 0x5851F42D4C957F2D + (on * _mix(h[:, None, :] + edges)).sum(2))
    h = _mix(h)
    odd = (h & 1).bool()
    return torch.stack([torch.where(odd, 0, h).sum(1), torch.where(odd, h, 0).sum(1)], 1)

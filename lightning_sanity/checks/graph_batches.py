"""Graph batches (many small graphs collated into one): edges that join two graphs, the pure function behind
``batch-mixing``'s ``cross-graph-edges`` pattern.

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


def graph_batch_parts(batch: Any) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """``(edge_index, node_graph)`` of a PyG-style graph batch (a dict, or an object with those attributes), or None."""
    get = batch.get if isinstance(batch, Mapping) else (lambda k: getattr(batch, k, None))
    try:
        edge_index, node_graph = get("edge_index"), get("batch")
    except Exception:  # objects whose attribute access raises
        return None
    if not (isinstance(edge_index, torch.Tensor) and isinstance(node_graph, torch.Tensor)):
        return None
    if edge_index.is_floating_point() or node_graph.is_floating_point() or edge_index.dim() != 2 \
            or edge_index.shape[0] != 2 or node_graph.dim() != 1 or node_graph.numel() == 0:
        return None
    return edge_index, node_graph


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

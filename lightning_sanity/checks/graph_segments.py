"""Segment-batched graphs (PyG's layout without an ``edge_index`` in the batch): the pure functions behind the flow
checks' graph reading (:mod:`lightning_sanity.callbacks._segment_flow`).

Many small graphs or point clouds collated into one batch hold every graph's nodes concatenated, ``(N, ...)``, and a
``batch`` vector ``(N,)`` giving each node's graph: integers, non-decreasing, every value from 0 to G - 1, with G the
number of graphs (the labels' and the output's batch size). A model that builds its neighbourhoods inside
``forward`` (a radius or k-nearest-neighbour graph, attention over all nodes) must keep them inside one graph;
one graph's output then depends on its own nodes alone. The flow checks test that on the node rows: the gradient of
graph ``i``'s output must vanish on the nodes of every other graph.

Example::

    >>> import torch
    >>> seg = torch.tensor([0, 0, 1, 1, 1, 2])
    >>> graph_count(seg), graph_count(torch.tensor([0, 2, 2])), graph_count(torch.tensor([1, 0]))
    (3, None, None)
    >>> batch = (torch.randn(6, 2), seg, torch.tensor([0, 1, 0]))
    >>> found = find_segments(batch)
    >>> found.graphs, found.nodes, found.position
    (3, 6, 1)
    >>> [tuple(t.shape) for t in first_graphs(batch, found, 2)]
    [(5, 2), (5,), (2,)]
    >>> round(graph_leak(torch.tensor([1.0, 1.0, 0.0, 0.0, 2.0, 0.0]), seg, 1), 3)
    0.5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Optional

import torch


@dataclasses.dataclass
class Segments:
    """Where a batch's ``batch`` vector is and what it says."""

    #: the node-to-graph vector ``(N,)``.
    vector: torch.Tensor
    #: its position in the batch (an index of a tuple / list, a key of a dict).
    position: Any
    #: G, the number of graphs.
    graphs: int
    #: N, the number of nodes.
    nodes: int


def graph_count(t: Any) -> Optional[int]:
    """G when ``t`` is a node-to-graph vector (1-D integers, starting at 0, each step 0 or 1, at least 2 graphs and
    more nodes than graphs), else None. One host read of three small figures."""
    if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.numel() < 3 or t.is_floating_point() \
            or t.is_complex() or t.dtype == torch.bool:
        return None
    steps = t[1:] - t[:-1]
    first, low, high = (int(v) for v in torch.stack([t[0], steps.min(), steps.max()]).tolist())
    if first != 0 or low < 0 or high > 1:
        return None
    graphs = int(t[-1]) + 1
    return graphs if 2 <= graphs < t.numel() else None


def _items(batch: Any) -> list[tuple[Any, Any]]:
    if isinstance(batch, Mapping):
        return list(batch.items())
    if type(batch) in (tuple, list):
        return list(enumerate(batch))
    return []


def find_segments(batch: Any) -> Optional[Segments]:
    """The node-to-graph vector of a tuple, list or dict batch that also holds a node tensor (its first dimension the
    vector's length) and a graph tensor (its first dimension the number of graphs: the labels), or None."""
    items = _items(batch)
    for position, value in items:
        graphs = graph_count(value)
        if graphs is None:
            continue
        nodes = int(value.shape[0])
        others = [v for p, v in items if p != position and isinstance(v, torch.Tensor) and v.dim() >= 1]
        if any(v.shape[0] == nodes for v in others) and any(v.shape[0] == graphs for v in others):
            return Segments(value, position, graphs, nodes)
    return None


def first_graphs(batch: Any, segments: Segments, count: int) -> Any:
    """``batch`` cut to its first ``count`` graphs: node tensors to their nodes, graph tensors to ``count`` rows, every
    other value as it is (same container type)."""
    nodes = int((segments.vector < count).sum())

    def cut(value: Any) -> Any:
        if not isinstance(value, torch.Tensor) or value.dim() == 0:
            return value
        if value.shape[0] == segments.nodes:
            return value[:nodes]
        if value.shape[0] == segments.graphs:
            return value[:count]
        return value

    if isinstance(batch, Mapping):
        return {k: cut(v) for k, v in batch.items()}
    return type(batch)(cut(v) for v in batch)


def _node_mass(node_grad: torch.Tensor) -> torch.Tensor:
    """``|node_grad|`` summed per node (row)."""
    return node_grad.detach().abs().float().reshape(node_grad.shape[0], -1).sum(1)


def graph_leak(node_grad: torch.Tensor, vector: torch.Tensor, index: int) -> float:
    """Share of ``|node_grad|`` (rows: nodes) on the nodes of graphs other than ``index`` (0 when all is zero)."""
    g = _node_mass(node_grad)
    # The other graphs' share summed on its own: total minus own would leave the round-off of two summation orders.
    others = g[vector.to(g.device) != index].sum()
    total, others = torch.stack([g.sum(), others]).tolist()
    return others / total if total > 0 else 0.0


def leaking_graphs(node_grad: torch.Tensor, vector: torch.Tensor, index: int, graphs: int, limit: int = 5) -> list[int]:
    """The other graphs whose nodes ``node_grad`` reaches most, strongest first."""
    g = _node_mass(node_grad)
    per_graph = torch.zeros(graphs, dtype=g.dtype, device=g.device).index_add_(0, vector.to(g.device).long(), g)
    per_graph[index] = 0
    order = torch.argsort(per_graph, descending=True)[:limit]
    return [int(j) for j in order.tolist() if float(per_graph[j]) > 0]


def differing_graphs(node_tensors: list[torch.Tensor], vector: torch.Tensor, graphs: int) -> list[int]:
    """The graphs whose nodes differ from graph 0's (another node count, or other values in a node tensor)."""
    rows = [t.detach().reshape(t.shape[0], -1) for t in node_tensors]
    first = [r[vector == 0] for r in rows]
    out = []
    for j in range(1, graphs):
        mine = [r[vector == j] for r in rows]
        if any(m.shape != f.shape or not torch.equal(m, f) for m, f in zip(mine, first)):
            out.append(j)
    return out

"""A similarity graph built from a table that still held the label: a patient-similarity (k-nearest-neighbour)
graph computed on the standardised table with its outcome column, the outcome then dropped from the node features.

Neighbours then share their label far more often than the features allow, and message passing hands every node
(validation nodes included) its label. What the run can know, with the features ``x`` ``(N, F)``, the label ``y``
``(N,)`` and the graph ``(N, N)`` of one full-batch step: rebuild the ``k``-nearest-neighbour graph (``k`` the
graph's smallest degree) on the standardised features, and again with the standardised label as one more column. The
leak is the second rebuild holding nearly every edge of the graph (:data:`REBUILT`) while the first does not
(:data:`FEATURES_ONLY`): the graph was computed from the label. A graph that is not a similarity graph of these
features (citations, molecules, a social network) matches neither and is left alone.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(300, 6, generator=g)
    >>> y = (x[:, 0] + torch.randn(300, generator=g) > 0).long()
    >>> leaked = knn_graph(torch.cat([_z(x), _z(y.float()[:, None])], 1), 8)
    >>> label_graph(x, y, leaked)["rebuilt"] > 0.9, label_graph(x, y, knn_graph(_z(x), 8))
    (True, None)
"""

from __future__ import annotations

from typing import Any, Optional

import torch

#: Share of the graph's edges a rebuild with the label must hold, and the most one without it may hold (the label
#: is one column among many: most of each neighbourhood is still the features', 67 % in the zoo's cohort of 10).
REBUILT, FEATURES_ONLY = 0.95, 0.85
#: Nodes needed (a neighbourhood of a handful says little), and at most (the rebuild is N x N distances).
MIN_NODES, MAX_NODES = 64, 8192


def _z(t: torch.Tensor) -> torch.Tensor:
    return (t - t.mean(0)) / t.std(0).clamp_min(1e-12)


def knn_graph(points: torch.Tensor, k: int) -> torch.Tensor:
    """The symmetrised ``k``-nearest-neighbour graph of ``points`` (``(N, D)``) as an ``(N, N)`` bool matrix."""
    dist = torch.cdist(points, points)
    dist.fill_diagonal_(float("inf"))
    near = torch.zeros(dist.shape, dtype=torch.bool, device=points.device)
    near.scatter_(1, dist.topk(k, largest=False).indices, True)
    return near | near.T


def label_graph(x: torch.Tensor, y: torch.Tensor, graph: torch.Tensor) -> Optional[dict[str, Any]]:
    """``{"k", "rebuilt", "features_only", "edges"}`` when ``graph`` is the ``k``-nearest-neighbour graph of the
    standardised features with the label as a column, and not of the features alone; else None."""
    n = int(y.shape[0])
    if not MIN_NODES <= n <= MAX_NODES or x.shape[0] != n or graph.shape != (n, n) or x.dim() != 2:
        return None
    x = x.detach().float()
    if not bool(torch.isfinite(x).all()) or not x.is_floating_point():
        return None
    edges = graph.detach() != 0
    edges = edges & ~torch.eye(n, dtype=torch.bool, device=edges.device)
    degree = edges.sum(1)
    total = int(edges.sum())
    if total == 0:
        return None
    k = int(degree.min())  # a symmetrised k-nearest-neighbour graph: every node keeps its own k, some get more
    if not 1 <= k < n // 4:
        return None
    spread = x.std(0) > 0
    if not bool(spread.any()):
        return None
    features = _z(x[:, spread])
    label = _z(y.detach().float().to(x.device)[:, None])

    def held(points: torch.Tensor) -> float:
        return float((knn_graph(points, k) & edges).sum()) / total

    rebuilt = held(torch.cat([features, label], 1))
    if rebuilt < REBUILT:
        return None
    features_only = held(features)
    if features_only > FEATURES_ONLY:
        return None
    return {"k": k, "rebuilt": rebuilt, "features_only": features_only, "edges": total}

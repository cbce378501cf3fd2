"""``target-leakage``: node features that hold each node's own label through a label-propagation feature built with
self-loops from every node's label; the glue is :mod:`lightning_sanity.callbacks._neighbour_labels`.

A full-batch node classifier fed ``A_hat @ one_hot(y)`` beside its attributes (the "neighbourhood histogram of the
known labels" trick), with ``A_hat`` the GCN's ``A + I`` normalisation and ``y`` every node's label instead of the
training nodes' only: each node's own label sits in its own features, validation nodes included. The feature is no
column equal to the label (it is smeared over the neighbours' labels), but its **support** is exact: column ``c`` is
positive at node ``i`` exactly when class ``c`` occurs in ``i``'s closed neighbourhood (``i`` and its neighbours,
by the graph the batch holds). The decisive nodes are those whose own class no neighbour has: there only the node's
own label can make its column positive.

When the batch holds the very weighted matrix the feature was propagated with (``A_hat`` itself), the columns equal
``A_hat @ one_hot(y)`` to float round-off (:data:`ROUND_OFF`), and its diagonal, non-zero at :data:`DECISIVE` nodes or
more, puts each one's own label in: no decisive node is needed then (a dense graph leaves few).

The support test, on a float ``(N, F)`` feature tensor, an integer ``(N,)`` label of every node (none ignored) and an
``(N, N)`` adjacency (or a ``(2, E)`` edge list) of the batch: for every class seen, some non-negative feature column
is positive at exactly the nodes whose closed neighbourhood holds that class (some node's does not: a column
positive everywhere proves nothing), with at least :data:`DECISIVE` decisive nodes. Exact on every node, so nothing is left to chance but the decisive nodes' count. Silent: the honest feature
from the training labels only (``one_hot(y) * train_mask[:, None]``; a validation node's own class is missing from
it), a histogram over the neighbours without self-loops (no decisive node is positive), node attributes, degrees,
standardised label features (no support left to read: not seen).

Example::

    >>> import torch, torch.nn.functional as F
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.randint(0, 3, (200,), generator=g)
    >>> adj = torch.triu((torch.rand(200, 200, generator=g) < 0.01).float(), 1); adj = adj + adj.T
    >>> a_hat = adj + torch.eye(200)
    >>> x = torch.randn(200, 4, generator=g)
    >>> leak = torch.cat([x, a_hat @ F.one_hot(y).float()], 1)
    >>> honest = torch.cat([x, adj @ F.one_hot(y).float()], 1)
    >>> own_label_columns(leak, y, adj), own_label_columns(honest, y, adj)
    ({0: 4, 1: 5, 2: 6}, None)
"""

from __future__ import annotations

from typing import Optional

import torch

from lightning_sanity.checks.target_inputs import MAX_CLASSES

#: Nodes whose own class no neighbour has, at least: the only places where the node's own label shows (the scans'
#: usual 16 samples).
DECISIVE = 16
#: Relative difference allowed between a column and ``graph @ one_hot(y)`` (float32 round-off of one product).
ROUND_OFF = 1e-5
#: Largest graph scanned (a dense ``(N, N)`` one is read on the host).
MAX_NODES = 8192


def edges(graph: torch.Tensor, nodes: int) -> Optional[torch.Tensor]:
    """``(E, 2)`` neighbour pairs ``(i, j)``, ``i != j``, of a dense ``(N, N)`` matrix (non-zero entries) or a
    ``(2, E)`` integer edge list over ``nodes`` nodes (both directions: a message either way makes neighbours);
    None for anything else."""
    if graph.is_complex() or nodes > MAX_NODES:
        return None
    if graph.shape == (nodes, nodes):
        pairs = (graph.detach().cpu() != 0).nonzero()
    elif graph.dim() == 2 and graph.shape[0] == 2 and not graph.is_floating_point() and graph.shape[1] > 0:
        pairs = graph.detach().cpu().long().T
        if int(pairs.min()) < 0 or int(pairs.max()) >= nodes:
            return None
        pairs = torch.cat([pairs, pairs.flip(1)])
    else:
        return None
    return pairs[pairs[:, 0] != pairs[:, 1]]


def own_label_columns(features: torch.Tensor, labels: torch.Tensor, graph: torch.Tensor
                      ) -> Optional[dict[int, int]]:
    """``{class: column}`` when, for every class of ``labels``, a column of ``features`` is ``graph @ one_hot`` with
    self-loops, or a non-negative column is positive at exactly the nodes whose closed neighbourhood in ``graph``
    holds the class, with enough decisive nodes; None otherwise."""
    n = labels.shape[0] if labels.dim() == 1 else -1
    if (features.dim() != 2 or features.shape[0] != n or not features.is_floating_point() or labels.is_floating_point()
            or labels.is_complex() or n < DECISIVE):
        return None
    y = labels.detach().cpu().long()
    if int(y.min()) < 0 or int(y.max()) >= MAX_CLASSES:
        return None
    pairs = edges(graph, n)
    if pairs is None or pairs.shape[0] == 0:
        return None
    one_hot = torch.nn.functional.one_hot(y).bool()
    neighbours = torch.zeros_like(one_hot)
    neighbours[pairs[:, 0], y[pairs[:, 1]]] = True
    closed = neighbours | one_hot
    x = features.detach().cpu().double()
    classes = torch.unique(y).tolist()
    found = _propagated(x, one_hot, graph, classes)
    if found is not None or int((~neighbours[torch.arange(n), y]).sum()) < DECISIVE:
        return found
    usable = (x >= 0).all(0) & torch.isfinite(x).all(0)
    positive = (x > 0) & usable
    found = {}
    for c in classes:
        if bool(closed[:, c].all()):  # a column positive everywhere would match: no evidence
            return None
        match = (positive == closed[:, c : c + 1]).all(0) & usable
        if not bool(match.any()):
            return None
        found[int(c)] = int(match.nonzero()[0, 0])
    return found if len(set(found.values())) == len(found) else None


def _propagated(x: torch.Tensor, one_hot: torch.Tensor, graph: torch.Tensor, classes: list) -> Optional[dict[int, int]]:
    """``{class: column}`` when the columns are ``graph @ one_hot`` exactly (float round-off) and the dense graph's
    diagonal (the self-loop that carries each node's own label) is non-zero at :data:`DECISIVE` nodes or more."""
    if graph.shape != (x.shape[0], x.shape[0]) or not graph.is_floating_point():
        return None
    g = graph.detach().cpu().double()
    if int((g.diagonal() != 0).sum()) < DECISIVE:
        return None
    spread = g @ one_hot.double()
    found: dict[int, int] = {}
    for c in classes:
        tol = ROUND_OFF * float(spread[:, c].abs().max())
        match = ((x - spread[:, c : c + 1]).abs() <= tol).all(0)
        if tol == 0 or not bool(match.any()):
            return None
        found[int(c)] = int(match.nonzero()[0, 0])
    return found if len(set(found.values())) == len(found) else None

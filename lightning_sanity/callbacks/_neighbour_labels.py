"""``target-leakage`` glue for node features that hold each node's own label through a label-propagation feature
built with self-loops (:func:`lightning_sanity.checks.neighbour_labels.own_label_columns`), and for a similarity
graph built on a table that still held the label (:func:`lightning_sanity.checks.label_graph.label_graph`), on the
first training batch of a full-batch graph model; called from :mod:`lightning_sanity.callbacks._target_inputs`.

The batch's tensors (dict values or tuple parts; a leading dimension of one, a ``DataLoader`` of one whole graph, is
dropped) are sorted into node features (float ``(N, F)``), node labels (integer ``(N,)``) and graphs (``(N, N)``
or a ``(2, E)`` edge list), and every combination over the same ``N`` is scanned.

The labels must be what a loss of the first step compares with (all of them, or the nodes of a boolean mask of the
batch: ``y[train_mask]``): an integer node attribute (an atom type beside a molecule's neighbourhood counts) is an
input, not the label, and is not reported.

Usage::

    scan_neighbour_labels(callback, batch)            # before the first step
    finish_neighbour_labels(callback, trainer)         # after it: True when it reported
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lightning_sanity.checks.label_graph import label_graph
from lightning_sanity.checks.neighbour_labels import DECISIVE, own_label_columns

CHECK = "target-leakage"
ADVICE = ("Build label features from the training nodes' labels only (`one_hot(y) * train_mask[:, None]`), "
          "propagated over the adjacency without self-loops, and keep a training node's own label out of its features "
          "(the label trick: split the training labels into a feature half and a target half at each step).")
GRAPH_ADVICE = ("Build the similarity graph from the feature columns only (drop the outcome before computing "
                "distances), with statistics fitted on the training nodes.")
#: attribute of the callback holding the matches until the first step's loss targets are known.
_STATE = "_neighbour_label_state"


def _parts(batch: Any) -> list[tuple[str, torch.Tensor]]:
    if isinstance(batch, Mapping):
        items = [(f"batch[{k!r}]", v) for k, v in batch.items()]
    elif isinstance(batch, (tuple, list)):
        items = [(f"batch[{i}]", v) for i, v in enumerate(batch)]
    else:
        return []
    return [(name, v[0] if v.dim() >= 2 and v.shape[0] == 1 else v) for name, v in items
            if isinstance(v, torch.Tensor) and v.dim() >= 1]


def scan_neighbour_labels(callback: Any, batch: Any) -> None:
    """Before the first step: keep the matches, to report once the step shows its loss compares with the label."""
    parts = _parts(batch)
    labels = [(n, t) for n, t in parts if t.dim() == 1 and not t.is_floating_point() and t.dtype != torch.bool]
    features = [(n, t) for n, t in parts if t.dim() == 2 and t.is_floating_point() and t.shape[0] != t.shape[1]]
    graphs = [(n, t) for n, t in parts if t.dim() == 2 and (t.shape[0] == t.shape[1] or t.shape[0] == 2)]
    masks = [t for _, t in parts if t.dim() == 1 and t.dtype == torch.bool]
    matches, scanned = [], False
    for lname, y in labels:
        for fname, x in features:
            for gname, a in graphs:
                if x.shape[0] != y.shape[0] or not (a.shape[0] == y.shape[0] or (
                        a.shape[0] == 2 and not a.is_floating_point())):
                    continue
                scanned = True
                found = own_label_columns(x, y, a)
                if found:
                    matches.append((_report, found, fname, gname, lname, y))
                elif a.shape[0] == y.shape[0] and (rebuilt := label_graph(x, y, a)) is not None:
                    matches.append((_report_graph, rebuilt, fname, gname, lname, y))
    setattr(callback, _STATE, (matches, masks) if scanned else None)


def finish_neighbour_labels(callback: Any, trainer: Any) -> bool:
    """After the first step: report a match whose labels a loss of the step compared with (all of them, or those at
    a boolean mask of the batch: ``y[train_mask]``); True when it reported."""
    state = getattr(callback, _STATE, None)
    setattr(callback, _STATE, None)
    if state is None:
        return False
    matches, masks = state
    targets = [t for t in getattr(callback, "_targets", []) if isinstance(t, torch.Tensor)]
    for report, found, fname, gname, lname, y in matches:
        if any(_scored(t, y, masks) for t in targets):
            callback._found.add(CHECK)
            report(callback, trainer, found, fname, gname, lname, int(y.shape[0]))
            return True
    callback._ran[CHECK].append("no node feature holds each node's own label through its neighbourhood")
    return False


def _scored(target: torch.Tensor, y: torch.Tensor, masks: list[torch.Tensor]) -> bool:
    """``target`` holds the labels ``y``: all of them, or those at one of the batch's boolean node masks."""
    t = target.detach().reshape(-1)
    if t.is_floating_point() or t.is_complex():
        return False
    kept = [y] + [y[m] for m in masks if m.shape == y.shape]
    return any(t.numel() == k.numel() and t.device == k.device and bool(torch.equal(t.long(), k.long())) for k in kept)


def _report(callback: Any, trainer: Any, found: dict, fname: str, gname: str, lname: str, nodes: int) -> None:
    columns = ", ".join(f"{c}: column {j}" for c, j in found.items())
    callback.report(
        trainer, CHECK, "error",
        f"In the first training batch, `{fname}` has for every class of `{lname}` a column positive at exactly the "
        f"nodes whose closed neighbourhood in `{gname}` (the node itself and its neighbours) holds that class "
        f"({columns}; all {nodes} nodes, {DECISIVE} or more of them holding a class no neighbour has): a "
        "label-propagation feature computed from every node's label with self-loops, so each node, validation nodes "
        "included, reads its own label from its input.",
        ADVICE, where=fname, key="neighbour-labels",
        data={"columns": {str(c): j for c, j in found.items()}, "graph": gname, "labels": lname, "nodes": nodes},
    )


def _report_graph(callback: Any, trainer: Any, rebuilt: dict, fname: str, gname: str, lname: str, nodes: int) -> None:
    callback.report(
        trainer, CHECK, "error",
        f"The graph `{gname}` of the first training batch is the {rebuilt['k']}-nearest-neighbour graph of the "
        f"standardised `{fname}` with the label `{lname}` as one more column: that rebuild holds "
        f"{rebuilt['rebuilt']:.0%} of its {rebuilt['edges']} edges, one from the features alone "
        f"{rebuilt['features_only']:.0%} ({nodes} nodes). The similarity graph was computed on a table that still held "
        "the outcome, so neighbours share their label far more often than the features allow and message passing "
        "hands every node, validation nodes included, its answer.",
        GRAPH_ADVICE, where=gname, key="label-graph",
        data={"graph": gname, "features": fname, "labels": lname, "nodes": nodes, **rebuilt},
    )

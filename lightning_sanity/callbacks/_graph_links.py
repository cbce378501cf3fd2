"""``target-leakage`` glue for link prediction scored on edges the model's graph holds
(:mod:`lightning_sanity.checks.graph_links`).

Mixed into :class:`~lightning_sanity.callbacks.leakage.LeakageChecks`: ``on_validation_batch_start`` reads the
first validation batch of each fit (the sanity check's, when Lightning runs one) and then retires. It looks for
node pairs with 0/1 labels in the batch and, only then, for graphs the module holds (buffers and plain tensor
attributes: a square ``(N, N)`` matrix or an integer ``(2, E)`` edge list covering the pairs' nodes). Cost: one
index into each such graph for the batch's pairs, once; nothing for batches without pairs.

Example::

    >>> import torch
    >>> graphs(torch.nn.Linear(2, 2), 2)
    []
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch

from lightning_sanity.callbacks._val_label_argument import watch_val_label_argument
from lightning_sanity.callbacks._val_label_input import judge_val_columns, read_val_columns, watch_val_label_input
from lightning_sanity.checks.graph_links import graph_leak, pairs_and_labels

log = logging.getLogger(__name__)

ADVICE = ("Build the graph the encoder propagates over from the training edges only, after the split (PyG's "
          "`RandomLinkSplit` does this: its validation `edge_index` holds no validation edge), and score validation "
          "on the held-out edges against non-edges.")


def graphs(module: torch.nn.Module, nodes: int) -> list[tuple[str, torch.Tensor]]:
    """Named square ``(N, N)`` tensors (``N >= nodes``) and integer ``(2, E)`` tensors the module holds."""
    found, seen = [], set()
    for prefix, sub in module.named_modules():
        for name, t in list(sub._buffers.items()) + [(k, v) for k, v in vars(sub).items() if k[:1] != "_"]:
            if not isinstance(t, torch.Tensor) or isinstance(t, torch.nn.Parameter) or id(t) in seen or t.dim() != 2:
                continue
            square = t.shape[0] == t.shape[1] and t.shape[0] >= nodes and not t.is_sparse
            edge_list = t.shape[0] == 2 and t.shape[1] > 0 and not t.is_floating_point() and t.dtype != torch.bool
            if square or edge_list:
                seen.add(id(t))
                found.append((f"{prefix}.{name}" if prefix else name, t))
    return found


class GraphLinkHooks:
    """The first validation batch's node pairs against the graphs the module holds, its label input
    (:mod:`._val_label_input`), and the first call of each validation run after training began
    (:mod:`._val_label_argument`)."""

    _graph_for: Any = None

    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        fresh = self._graph_for is not self._ran  # type: ignore[attr-defined]  # a fresh dict per fit
        pending = getattr(self, "_val_labels", None)
        labels = pending if not trainer.sanity_checking and batch_idx == 0 and dataloader_idx == 0 else None
        if getattr(self, "_val_columns", None) is not None and not trainer.sanity_checking:
            judge_val_columns(self, trainer)  # read in the sanity check: training has run since
        if not fresh and not labels:
            if not trainer.sanity_checking and not pending:  # training's labels come with its first step
                self.retire("on_validation_batch_start")  # type: ignore[attr-defined]
            return
        self._graph_for = self._ran  # type: ignore[attr-defined]
        if not self.is_enabled("target-leakage") or not trainer.is_global_zero:  # type: ignore[attr-defined]
            return
        try:
            if labels:  # each validation run after training began, until found: teacher forcing kept there
                watch_val_label_argument(self, trainer, pl_module, batch)
            if fresh:
                self._graph_look(trainer, pl_module, batch)
                watch_val_label_input(self, trainer, pl_module, batch)  # a label trick that kept validation labels
                read_val_columns(self, trainer, batch)  # a sparse input holding its label's column
        except Exception:  # a check must never lose the user's run
            log.debug("graph-link scan failed", exc_info=True)

    def _graph_look(self, trainer: Any, pl_module: Any, batch: Any) -> None:
        if isinstance(batch, Mapping):
            items = list(batch.values())
        else:
            items = list(batch) if isinstance(batch, (list, tuple)) else [batch]
        found = pairs_and_labels([t for t in items if isinstance(t, torch.Tensor)])
        if found is None:
            return
        pairs, labels = found
        if pairs.shape[0] == 0 or int(pairs.min()) < 0:
            return
        nodes = int(pairs.max()) + 1
        with torch.no_grad():
            for name, graph in graphs(pl_module, nodes):
                verdict = graph_leak(pairs, labels, graph)
                if verdict is None:
                    continue
                self._found.add("target-leakage")  # type: ignore[attr-defined]
                self.report(  # type: ignore[attr-defined]
                    trainer, "target-leakage", "error",
                    f"{verdict['positives_in_graph']} of the {verdict['positives']} positive node pairs of the first "
                    f"validation batch are edges of `{name}`, the graph the model holds, against "
                    f"{verdict['negatives_in_graph']} of its {verdict['negatives']} negatives (chance "
                    f"{verdict['chance']:.1g}): the validation edges were left in the graph the model propagates over, "
                    "so it reads each answer from its input and validation measures nothing.",
                    ADVICE, where=name, key="graph-links", at_step=False,
                    data={"kind": "graph-links", "graph": name, **verdict},
                )
                return

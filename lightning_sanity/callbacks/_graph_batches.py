"""``batch-mixing`` on graph batches (glue, no math: that is :mod:`lightning_sanity.checks.graph_batches`).

:class:`~lightning_sanity.callbacks.model_checks.ModelChecks` hands :class:`GraphEdgeTally` the first training
batches. A graph batch's output has one row per graph while its input has one row per node, so the per-sample
gradient test does not apply; the edges do: a correctly collated batch has none between two graphs. An un-shifted
``edge_index`` crosses graphs only when a graph is larger than the first of its batch, so the first
:data:`BATCHES` batches of the first epoch are tallied (on the device, no sync) and read once.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.checks import graph_batches as G
from lightning_sanity.findings import Severity

#: Training batches whose edges are tallied before the one read.
BATCHES = 16


class GraphEdgeTally:
    """Cross-graph and out-of-range edges of the first training batches, summed on the device."""

    def __init__(self) -> None:
        self.counts: Optional[torch.Tensor] = None  # cross, outside, edges
        self.batches = 0
        self.done = False

    def add(self, batch: Any) -> bool:
        """Tally one batch; whether the tally is full (time to judge)."""
        parts = G.graph_batch_parts(batch)
        if parts is None:
            return self.batches >= 1
        counts = G.edge_counts(*parts)
        self.counts = counts if self.counts is None else self.counts + counts.to(self.counts.device)
        self.batches += 1
        return self.batches >= BATCHES

    def judge(self, cb: Any, trainer: Any) -> None:
        """Read the tally once and report (or set the detail)."""
        if self.done or self.counts is None:
            return
        self.done = True
        cross, outside, edges = (int(v) for v in self.counts.cpu())
        span = f"{self.batches} training batch{'es' if self.batches > 1 else ''}"
        if cross == 0 and outside == 0:
            probed = cb.collector(trainer).details.get("batch-mixing")  # the model's own mixing, probed per graph
            cb.detail(trainer, "batch-mixing", f"graph batches: none of {edges} edges over {span} joins two graphs"
                      + (f"; {probed}" if probed else ""))
            return
        cb.detail(trainer, "batch-mixing", f"graph batches: {cross} of {edges} edges over {span} join two graphs")
        cb.report(
            trainer, "batch-mixing", Severity.ERROR,
            f"{cross} of the {edges} edges of the first {span} join nodes of two different graphs"
            + (f" ({outside} more point past their batch's nodes)" if outside else "")
            + ": messages flow between samples, so each graph's prediction depends on the graphs batched with it.",
            "When collating, shift each graph's `edge_index` by the number of nodes of the graphs before it "
            "(`edge_index + offset`), as PyG's `Batch.from_data_list` does.",
            where="edge_index", at_step=False, key="cross-graph-edges",
            data={"cross": cross, "outside": outside, "edges": edges, "batches": self.batches})

"""``constant-output`` and ``batch-mixing`` on segment-batched graphs: node tensors ``(N, ...)`` with a ``batch``
vector and one output row per graph (the math: :mod:`lightning_sanity.checks.graph_segments`).

:class:`~lightning_sanity.callbacks.model_checks.ModelChecks` calls :func:`judge_segments` when the first batch's
per-sample reading fails (its output has no row per input row) and the batch holds a node-to-graph vector. One
forward on the first :data:`GRAPHS` graphs (the whole batch when the model rejects fewer), with the node tensors as
leaves; ``flow_samples`` backward passes, one per tested graph: the share of the gradient of graph ``i``'s output
that lands on other graphs' nodes. Run by the caller in eval mode under ``isolate_rng``, like the per-sample probes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Optional

import torch
from torch import nn

from lightning_sanity.batch import input_of, map_tensors
from lightning_sanity.callbacks._flow_run import _Skip
from lightning_sanity.checks import flow
from lightning_sanity.checks import graph_batches as G
from lightning_sanity.checks import graph_segments as GS
from lightning_sanity.checks.episodes import batchnorm_advice, unconverged_batchnorm
from lightning_sanity.findings import Severity

#: Graphs of the first batch the probes run on: as many as the per-sample probes' samples (model_checks._FLOW_BATCH).
GRAPHS = 9


class SegmentRun:
    """One model call on the first graphs of a segment batch, node tensors as leaves."""

    def __init__(self, model: nn.Module, call: tuple, vector: torch.Tensor, graphs: int, samples: int,
                 tolerance: float) -> None:
        self.model, (self.fn, self.how, self.args, self.kwargs) = model, call
        self.vector, self.graphs, self.nodes = vector, graphs, int(vector.shape[0])
        self.samples, self.tolerance = samples, tolerance
        self.leaves: list[torch.Tensor] = []
        self.node_inputs: list[torch.Tensor] = []
        self.output: Optional[torch.Tensor] = None

    def _is_node(self, t: torch.Tensor) -> bool:
        return t.dim() >= 1 and t.shape[0] == self.nodes and t is not self.vector

    @contextlib.contextmanager
    def _embedding_leaves(self, int_inputs: list[torch.Tensor]) -> Iterator[None]:
        # Integer node features (atom types) reach the model through embeddings: their outputs are the leaves.
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            ids = args[0] if args else None
            if not (isinstance(output, torch.Tensor) and output.is_floating_point() and isinstance(ids, torch.Tensor)
                    and any(ids is t or (ids.shape == t.shape and torch.equal(ids, t)) for t in int_inputs)):
                return None
            leaf = output.detach().requires_grad_(True)
            self.leaves.append(leaf)
            return leaf

        handles = [m.register_forward_hook(hook) for m in self.model.modules()
                   if isinstance(m, (nn.Embedding, nn.EmbeddingBag))] if int_inputs else []
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward(self) -> torch.Tensor:
        self.leaves, self.node_inputs, int_inputs = [], [], []

        def leaf(t: torch.Tensor) -> torch.Tensor:
            if not self._is_node(t):
                return t
            self.node_inputs.append(t)
            if t.is_floating_point():
                copy = t.detach().clone().requires_grad_(True)
                self.leaves.append(copy)
                return copy
            if t.dtype != torch.bool:
                int_inputs.append(t)
            return t

        args, kwargs = map_tensors(self.args, leaf), map_tensors(self.kwargs, leaf)
        with self._embedding_leaves(int_inputs):
            out = self.fn(args, kwargs)
        tensor = flow.first_output_tensor(out, self.graphs)
        if tensor is None or tensor.shape[0] != self.graphs:
            raise _Skip(f"the output of `{self.how}` holds no float tensor with one row per graph ({self.graphs})")
        self.output = tensor
        return tensor

    def mixing(self) -> dict[str, Any]:
        """The largest share of a tested graph's output gradient that lands on other graphs' nodes."""
        rows = self.output.reshape(self.graphs, -1)
        generator = torch.Generator().manual_seed(0)
        worst: dict[str, Any] = {"leak": 0.0, "graph": 0, "others": []}
        indices = flow.sample_indices(self.graphs, self.samples)
        for i in indices:
            row = flow.strided_units(rows[i : i + 1], flow.SPREAD_UNITS)[0]
            w = torch.randn(row.shape[0], generator=generator).to(row.device, torch.float32)
            grads = torch.autograd.grad((row.float() * w).sum(), self.leaves, retain_graph=True, allow_unused=True)
            for g in grads:
                if g is None or g.shape[0] != self.nodes:
                    continue
                leak = GS.graph_leak(g, self.vector, i)
                if leak > worst["leak"]:
                    worst.update(leak=leak, graph=i, others=GS.leaking_graphs(g, self.vector, i, self.graphs))
        worst["graphs_tested"] = indices
        return worst


def _run(cb: Any, pl_module: nn.Module, batch: Any, segments: GS.Segments) -> SegmentRun:
    """The segment forward on the first :data:`GRAPHS` graphs, or on the whole batch when the model rejects that."""
    # A batch with an edge_index runs whole: cutting it to its first graphs would have to cut the edges and their
    # attributes too.
    whole = segments.graphs <= GRAPHS or G.graph_batch_parts(batch) is not None
    counts = [segments.graphs] if whole else [GRAPHS, segments.graphs]
    first_error: Optional[Exception] = None
    for count in counts:
        part = GS.first_graphs(batch, segments, count) if count < segments.graphs else batch
        vector = part[segments.position]
        for call in cb._resolve_call(pl_module, input_of(part, cb.get_input), part):
            run = SegmentRun(pl_module, call, vector, count, cb.flow_samples,
                             cb.threshold("batch-mixing", "leak_fraction"))
            try:
                run.forward()
                return run
            except Exception as err:
                first_error = first_error or err
    raise _Skip(f"the graph batch's model call failed: {first_error!r}")


def judge_segments(cb: Any, trainer: Any, pl_module: nn.Module, batch: Any, segments: GS.Segments) -> None:
    """Run the segment probes and report ``constant-output`` and ``batch-mixing`` (each when enabled)."""
    run = _run(cb, pl_module, batch, segments)
    for check, judge in (("constant-output", _judge_constant), ("batch-mixing", _judge_mixing)):
        if cb.is_enabled(check):
            try:
                judge(cb, trainer, run)
            except Exception as err:  # a check must never lose the user's run
                cb.skip(trainer, check, f"the graph batch probe failed: {err!r}")


def _judge_mixing(cb: Any, trainer: Any, run: SegmentRun) -> None:
    check = "batch-mixing"
    if not run.leaves:
        cb.skip(trainer, check, "no float node tensor or node embedding to take the gradient at")
        return
    if not run.output.requires_grad:
        cb.skip(trainer, check, "the graph output does not depend differentiably on the nodes")
        return
    if flow.is_pairwise_output(run.output, run.graphs):
        cb.skip(trainer, check, "the graph output is a (graphs, graphs) comparison of graphs, which mixes them by design")
        return
    result = run.mixing()
    cb.detail(trainer, check, f"graph batch ({run.graphs} graphs, {run.nodes} nodes): largest cross-graph gradient "
                              f"share {result['leak']:.2g} over {len(result['graphs_tested'])} graph(s)")
    if not flow.is_mixing(result["leak"], run.tolerance):
        return
    cb.report(
        trainer, check, Severity.WARNING,
        f"Graph {result['graph']}'s output depends on the nodes of other graphs of the batch (e.g. {result['others']}):"
        f" {result['leak']:.1%} of its gradient lands on them, in eval mode. The batch holds {run.graphs} graphs as "
        f"{run.nodes} concatenated nodes with a node-to-graph vector, so neighbourhoods, attention or pooling built "
        "over all nodes join nodes of different graphs: each prediction depends on which graphs share its batch.",
        "Keep every neighbourhood inside one graph: pass the batch vector to `radius_graph` / `knn_graph` (or mask "
        "`adj &= batch[:, None] == batch[None, :]`), mask attention between graphs, and pool per graph "
        "(`scatter`/`index_add` over the batch vector).",
        where=None, key="graph-mixing",
        data={"graph": result["graph"], "leak_fraction": result["leak"], "other_graphs": result["others"],
              "graphs": run.graphs, "nodes": run.nodes, "called_as": run.how})


def _judge_constant(cb: Any, trainer: Any, run: SegmentRun) -> None:
    check = "constant-output"
    rows = run.output.detach().reshape(run.graphs, -1)
    differing = GS.differing_graphs(run.node_inputs, run.vector, run.graphs)
    if not differing:
        cb.skip(trainer, check, "every graph of the first batch has the same nodes")
        return
    spread, scale = flow.output_spread(rows, differing)
    cb.detail(trainer, check, f"graph batch: output spread {spread:.3g} (scale {scale:.3g}) over {len(differing)} "
                              "other graph(s)")
    if not flow.is_constant(spread, scale):
        return
    data = {"output_spread": spread, "output_scale": scale, "graphs_compared": len(differing), "called_as": run.how}
    zero = [n for n, p in run.model.named_parameters() if n.endswith("weight") and p.numel() and not p.detach().any()]
    unconverged = unconverged_batchnorm(run.model)
    if zero or unconverged:
        # A deliberate zero initialisation, or eval-mode BatchNorm statistics still at 0/1: not judged at start.
        data.update({"zero_weights": zero[:5]} if zero else {"batchnorm": unconverged})
        cb.report(
            trainer, check, Severity.INFO,
            f"In eval mode the model gives the same output for {len(differing) + 1} graphs whose nodes differ, while "
            + (f"`{zero[0]}` starts with all-zero weights." if zero else
               "its BatchNorm running statistics are still near their initial 0/1."),
            "Nothing to do if the zero initialisation is deliberate." if zero else batchnorm_advice(unconverged),
            where=None, data=data, key="graph-constant-init")
        return
    cb.report(
        trainer, check, Severity.ERROR,
        f"The model gives the same output (largest difference {spread:.3g} at output scale {scale:.3g}) for "
        f"{len(differing) + 1} graphs whose nodes differ, so it cannot learn anything from its input.",
        "Check the forward for node features multiplied by zero, overwritten or not used, and the pooling (a "
        "pool over a size-1 axis, or over the wrong dimension).",
        where=None, data=data, key="graph-constant")

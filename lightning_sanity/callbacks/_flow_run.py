"""Measure for ``constant-output`` and ``batch-mixing`` at the start: one model call on the first batch with leaf
inputs (:class:`_FlowRun`), and forward hooks that place where information stops or samples mix (:class:`_Recorder`).

No findings here: :mod:`~lightning_sanity.callbacks.constant_output_start` and
:mod:`~lightning_sanity.callbacks.batch_mixing` judge the figures (through :mod:`lightning_sanity.checks.flow`) and
report. ``_Skip``, ``_SkipOne`` and ``_Defer`` carry why a check cannot run on this model or batch.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

import torch
from torch import nn

from lightning_sanity.batch import first_tensor, map_tensors
from lightning_sanity.callbacks._extra_forward import module_calls
from lightning_sanity.checks import flow


class _Skip(Exception):
    """A flow check cannot run on this model or batch; the message is the reason shown in the summary."""


class _Defer(Exception):
    """This batch cannot be used (a single sample); try the next one."""


class _SkipOne(Exception):
    """One flow check cannot run; the other may still."""

    def __init__(self, check: str, reason: str) -> None:
        super().__init__(reason)
        self.check = check


def _place(spot: dict[str, Any], model: nn.Module) -> str:
    """Words for where a transition found by :func:`flow.locate_transition` happens."""
    inside, after, before = spot["inside"], spot["after"], spot["before"]
    if inside and after == before == inside:
        return f"inside `{inside}`"
    owner = f"`{inside}`" if inside else type(model).__name__
    start = f"the output of `{after}`" if after else "the model input"
    end = f"the input of `{before}`" if before else "the model output"
    if after == inside:
        start = f"the input of `{after}`" if after else "the model input"
    if before == inside:
        end = f"the output of `{before}`" if before else "the model output"
    return f"in the forward of {owner}, between {start} and {end}"


class _FlowRun:
    """One model call on the first batch with leaf inputs, and the judgements made from it.

    Float input tensors with a batch dimension are replaced by leaf copies that require grad; integer inputs are
    followed to the ``nn.Embedding`` modules, whose outputs are turned into leaves by a forward hook.
    """

    def __init__(self, model: nn.Module, call: tuple, size: int, samples: int,
                 tolerance: float = flow.LEAK_TOLERANCE) -> None:
        self.model = model
        self.tolerance = tolerance  # batch-mixing's leak_fraction threshold
        self.fn, self.how, self.args, self.kwargs = call
        self.size = size
        self.samples = samples
        self.generator = torch.Generator().manual_seed(0)
        self.leaves: list[tuple[torch.Tensor, int]] = []
        self.inputs: list[torch.Tensor] = []
        self.int_inputs: list[torch.Tensor] = []
        self.output: Optional[torch.Tensor] = None
        self.views: list[tuple[str, torch.Tensor]] = []
        self.pairwise = False
        self.seeded_output: Optional[torch.Tensor] = None  # the forward-value probe's unmoved output, reused
        self.batch: Any = None  # the whole first batch (the call may hold its first samples only)

    # -------------------------------------------------------------- forward with leaves

    def _leaf_args(self) -> tuple[tuple, dict]:
        self.leaves, self.inputs, self.int_inputs = [], [], []

        def leaf(t: torch.Tensor) -> torch.Tensor:
            if t.dim() == 0 or t.shape[0] != self.size:
                return t
            self.inputs.append(t)
            if t.is_floating_point():
                copy = t.detach().clone().requires_grad_(True)
                self.leaves.append((copy, 0))
                return copy
            self.int_inputs.append(t)
            return t

        return map_tensors(self.args, leaf), map_tensors(self.kwargs, leaf)

    def _embedding_batch_dim(self, ids: Any) -> Optional[int]:
        if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.dim() == 0:
            return None
        for t in self.int_inputs:
            if ids is t or (ids.shape == t.shape and torch.equal(ids, t)):
                return 0
            if ids.dim() == 2 and ids.shape == t.shape[::-1] and torch.equal(ids, t.t()):
                return 1
        # An index tensor computed inside forward: per sample only if it is (B, ...); a 1-D one of length B
        # may be positions, shared by every sample.
        return 0 if ids.dim() >= 2 and ids.shape[0] == self.size else None

    @contextlib.contextmanager
    def _embedding_leaves(self) -> Iterator[None]:
        def hook(module: nn.Module, args: tuple, output: Any) -> Any:
            if not isinstance(output, torch.Tensor) or not output.is_floating_point() or not args:
                return None
            dim = self._embedding_batch_dim(args[0])
            if dim is None:
                return None
            leaf = output.detach().requires_grad_(True)
            self.leaves.append((leaf, dim))
            return leaf

        handles = [m.register_forward_hook(hook) for m in self.model.modules()
                   if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def forward(self, record: Optional["_Recorder"] = None) -> Any:
        args, kwargs = self._leaf_args()
        with self._embedding_leaves(), (record if record is not None else contextlib.nullcontext()):
            out = self.fn(args, kwargs)
        tensor = flow.first_output_tensor(out, self.size)
        if tensor is None:
            raise _Skip(f"the output of `{self.how}` holds no float tensor with a batch dimension of {self.size}")
        if record is None:
            self.output = tensor
            self.views = flow.per_sample_views(tensor, self.size)
            self.pairwise = flow.is_pairwise_output(tensor, self.size)
        return tensor

    # -------------------------------------------------------------- constant-output

    @property
    def can_perturb(self) -> bool:
        return any(t.is_floating_point() for t in self.inputs)

    def differing_inputs(self) -> list[int]:
        differing: set[int] = set()
        for t in self.inputs:
            differing.update(flow.differing_samples(t.detach().reshape(self.size, -1)))
        return sorted(differing)

    def _perturbed_args(self) -> tuple[tuple, dict]:
        done = False

        def swap(t: torch.Tensor) -> torch.Tensor:
            nonlocal done
            if not done and t.is_floating_point() and t.dim() > 0 and t.shape[0] == self.size:
                done = True
                return flow.perturb(t, 0, self.generator)
            return t

        return map_tensors(self.args, swap), map_tensors(self.kwargs, swap)

    def perturbed_rows(self) -> torch.Tensor:
        args, kwargs = self._perturbed_args()
        with torch.no_grad():
            out = flow.first_output_tensor(self.fn(args, kwargs), self.size)
        views = flow.per_sample_views(out, self.size) if out is not None else []
        if not views:
            raise _SkipOne("constant-output", "the output of the perturbed input has no batch dimension")
        return views[0][1]

    def locate_constant(self, perturbed: bool) -> Optional[dict[str, Any]]:
        """Where the inputs stop making a difference, and whether a zero-weight layer explains it."""
        base_args, base_kwargs = (self._perturbed_args() if perturbed else (self.args, self.kwargs))
        reference = 0
        with torch.no_grad():
            first = first_tensor((base_args, base_kwargs))
            rows = first.reshape(self.size, -1) if first is not None else None
        others = flow.differing_samples(rows) if rows is not None else []
        if not others:
            return None
        picked = others[: max(self.samples, 1)]

        def varies(t: torch.Tensor) -> Optional[torch.Tensor]:
            dim = flow.batch_dim(t, self.size)
            if dim is None or not (t.is_floating_point() or t.is_complex()):
                return None
            r = t.detach().movedim(dim, 0).reshape(self.size, -1)
            idx = torch.tensor(picked, device=r.device)
            return (r.index_select(0, idx) != r[reference]).any()

        recorder = _Recorder(self.model, varies)
        with torch.no_grad(), recorder:
            self.fn(base_args, base_kwargs)
        spot = recorder.transition()
        if spot is None:
            return None
        inside = spot["inside"]
        spot["where"] = inside if inside else (spot["before"] or None)
        module = self.model.get_submodule(inside) if inside else None
        if module is not None and not any(True for _ in module.children()):
            weight = getattr(module, "weight", None)
            spot["zero_weights"] = bool(isinstance(weight, torch.Tensor) and weight.numel() and not weight.detach().any())
        return spot

    def gradient_change(self, rows: torch.Tensor, differing: Sequence[int]) -> Optional[float]:
        """The largest change of sample 0's output (a random projection of it, per square root of the units
        projected) that its gradient predicts for the inputs of ``differing`` samples, to first order; None when no
        input leaf reaches it.

        A straight-through estimator (``z + (q - z).detach()``) gives an output whose value ignores the input while
        its gradient carries it: the model still learns from its input.
        """
        leaves = [t for t, _ in self.leaves]
        if not leaves or not rows.requires_grad or not differing:
            return None
        row = flow.strided_units(rows[:1], flow.SPREAD_UNITS)[0]
        w = torch.randn(row.shape[0], generator=torch.Generator().manual_seed(1)).to(row.device, torch.float32)
        grads = torch.autograd.grad((row.float() * w).sum(), leaves, retain_graph=True, allow_unused=True)
        change: Optional[float] = None
        for g, (t, dim) in zip(grads, self.leaves):
            if g is None:
                continue
            g0, x = g.movedim(dim, 0)[0].float(), t.detach().movedim(dim, 0).float()
            steps = (x[list(differing[:8])] - x[0]).reshape(min(len(differing), 8), -1)
            found = float((steps @ g0.reshape(-1)).abs().max())
            change = found if change is None else max(change, found)
        return None if change is None else change / math.sqrt(row.shape[0])

    # -------------------------------------------------------------- batch-mixing

    def _weighted_sum(self, rows: torch.Tensor, index: int) -> torch.Tensor:
        # Random weights keep the terms of a sample's output from cancelling each other in the gradient. A wide
        # output (an LM's logits) is weighed on evenly strided units only: mixed samples reach all of them.
        row = flow.strided_units(rows[index : index + 1], flow.SPREAD_UNITS)[0]
        w = torch.randn(row.shape[0], generator=self.generator).to(rows.device, torch.float32)
        return (row.float() * w).sum()

    def worst_leak(self, rows: torch.Tensor, indices: Sequence[int]) -> dict[str, Any]:
        """The largest cross-sample gradient share of ``rows`` (the output in one per-sample layout) over the
        samples ``indices``: ``{"leak", "sample", "others"}``, one backward pass per sample (the graph kept)."""
        leaves = [t for t, _ in self.leaves]
        worst: dict[str, Any] = {"leak": 0.0, "sample": indices[0], "others": []}
        for i in indices:
            grads = torch.autograd.grad(self._weighted_sum(rows, i), leaves, retain_graph=True, allow_unused=True)
            for g, (_, dim) in zip(grads, self.leaves):
                if g is None:
                    continue
                leak = flow.leak_fraction(g, dim, i)
                if leak > worst["leak"]:
                    worst.update(leak=leak, sample=i, others=flow.leaking_samples(g, dim, i))
        return worst

    def mixing(self) -> dict[str, Any]:
        """The worst cross-sample gradient share, for the first output layout that shows none (or the first)."""
        indices = flow.sample_indices(self.size, self.samples)
        results = []
        for layout, rows in self.views:
            worst = {**self.worst_leak(rows, indices), "layout": layout, "samples": indices}
            if not flow.is_mixing(worst["leak"], self.tolerance):
                return worst
            results.append(worst)
        return results[0]

    def locate_mixing(self, index: int, layout: str) -> Optional[dict[str, Any]]:
        """Where sample ``index``'s output stops drawing on other samples, walking the forward in call order."""
        recorder = _Recorder(self.model, lambda t: t if (t.requires_grad and flow.batch_dim(t, self.size) is not None) else None)
        tensor = self.forward(record=recorder)
        rows = dict(flow.per_sample_views(tensor, self.size)).get(layout)
        if rows is None:
            return None
        captured = [(k, t) for k, t in enumerate(recorder.values) if t is not None]
        if not captured:
            return None
        grads = torch.autograd.grad(self._weighted_sum(rows, index), [t for _, t in captured], allow_unused=True)
        flags: list[Optional[bool]] = [None] * len(recorder.values)
        for (k, t), g in zip(captured, grads):
            if g is not None:
                flags[k] = flow.is_mixing(flow.leak_fraction(g, flow.batch_dim(t, self.size), index), self.tolerance)
        return recorder.transition(flags)


class _Recorder:
    """Forward hooks on every module that record, in call order, a value computed from each module's input and
    output tensor, and each module's (enter, exit) times."""

    def __init__(self, model: nn.Module, measure: Callable[[torch.Tensor], Any]) -> None:
        self.measure = measure
        self.events: list[tuple[int, str, str]] = []
        self.values: list[Any] = []
        self.spans: dict[str, tuple[int, int]] = {}
        self._enter: dict[str, int] = {}
        self._hooks = module_calls(model, self._start, self._end)

    def _add(self, name: str, kind: str, value: Any) -> int:
        t = len(self.events)
        tensor = first_tensor(value)
        self.events.append((t, name, kind))
        self.values.append(self.measure(tensor) if isinstance(tensor, torch.Tensor) else None)
        return t

    def _start(self, name: str, args: Any) -> None:
        # A module called several times keeps its first span: enough to place a transition.
        self._enter.setdefault(name, self._add(name, "in", args))

    def _end(self, name: str, started: None, output: Any) -> None:
        t = self._add(name, "out", output)
        if name not in self.spans:
            self.spans[name] = (self._enter.get(name, t), t)

    def __enter__(self) -> "_Recorder":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)

    def transition(self, flags: Optional[Sequence[Optional[bool]]] = None) -> Optional[dict[str, Any]]:
        if flags is None:
            values = [v for v in self.values if isinstance(v, torch.Tensor)]
            resolved = iter(torch.stack(values).tolist()) if values else iter(())
            flags = [bool(next(resolved)) if isinstance(v, torch.Tensor) else None for v in self.values]
        events = [flow.Event(t, name, kind, flag) for (t, name, kind), flag in zip(self.events, flags)]
        return flow.locate_transition(events, self.spans)

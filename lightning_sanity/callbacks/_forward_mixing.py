"""``batch-mixing`` by forward values: does moving one sample's input move the other samples' outputs?

The gradient test of :class:`~lightning_sanity.callbacks._flow_run._FlowRun` cannot see a dependence that carries
no gradient: statistics over the batch that are ``.detach()``-ed (RevIN or a hand-written normaliser whose mean and
spread are taken over ``dim=(0, 1)`` and detached, as RevIN code does), or computed under ``no_grad``. This probe
runs the model four more times under ``no_grad`` on the same samples, with the same RNG seed before each call (so
noise drawn in ``forward`` is the same draw): twice as given (the two must agree exactly, or nothing is compared),
with sample 0's input scaled by ``1 + r`` (its level and spread move, the two things batch statistics average), and
with ``r / 2``. Only when that finds mixing, :func:`locate` runs two more to name where. The judgement is in
:func:`lightning_sanity.checks.forward_mixing.judge`.

Usage (inside the flow checks, the model already in eval mode, inside ``isolate_rng()``)::

    probe = forward_probe(run)   # None when there is nothing to perturb
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Optional

import torch
from torch import nn

from lightning_sanity.batch import map_tensors, tensors_of
from lightning_sanity.checks import batch_permutation as P
from lightning_sanity.checks import flow
from lightning_sanity.checks.forward_mixing import RELATIVE, judge
from lightning_sanity.replays.rng import seed_global

_SEED = 0


def _moved(x: torch.Tensor, dim: int, index: int, relative: float, generator: torch.Generator) -> torch.Tensor:
    """A copy of ``x`` whose sample ``index`` (along ``dim``) is scaled by ``1 + relative`` plus a little noise (a
    sample that is all zeros still moves)."""
    out = x.detach().clone()
    view = out.movedim(dim, 0)
    sample = view[index].float()
    size = float(sample.std()) if sample.numel() > 1 else 0.0
    size = size if size > 0 else max(float(sample.abs().mean()), 1.0)
    noise = torch.randn(sample.shape, generator=generator, dtype=torch.float32).to(x.device)
    view[index] = (sample * (1 + relative) + relative * size * noise).to(x.dtype)
    return out


class _Probe:
    def __init__(self, run: Any) -> None:
        self.run = run
        self.size = run.size

    def _call(self, relative: float, record: Optional[Any] = None) -> Optional[torch.Tensor]:
        """One seeded forward; ``relative`` 0 leaves the inputs as they are."""
        run, gen = self.run, torch.Generator().manual_seed(1)
        moved = False

        def move(t: torch.Tensor) -> torch.Tensor:
            nonlocal moved
            if relative and t.is_floating_point() and t.dim() > 0 and t.shape[0] == self.size:
                moved = True
                return _moved(t, 0, 0, relative, gen)
            return t

        args, kwargs = map_tensors(run.args, move), map_tensors(run.kwargs, move)

        def hook(module: nn.Module, inputs: tuple, output: Any) -> Any:
            nonlocal moved
            if not relative or not isinstance(output, torch.Tensor) or not output.is_floating_point() or not inputs:
                return None
            dim = run._embedding_batch_dim(inputs[0])
            if dim is None:
                return None
            moved = True
            return _moved(output, dim, 0, relative, gen)

        handles = [m.register_forward_hook(hook) for m in run.model.modules()
                   if isinstance(m, (nn.Embedding, nn.EmbeddingBag))]
        seed_global(_SEED)  # the caller's isolate_rng() puts the global RNG back
        try:
            with torch.no_grad(), (record if record is not None else contextlib.nullcontext()):
                out = flow.first_output_tensor(run.fn(args, kwargs), self.size)
        finally:
            for h in handles:
                h.remove()
        if relative and not moved:
            return None
        return out


@contextlib.contextmanager
def _buffers_kept(model: nn.Module) -> Iterator[None]:
    """Buffers a forward updates even in eval mode (a counter, a cache) put back afterwards."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def forward_probe(run: Any) -> Optional[dict[str, Any]]:
    """The forward-value mixing figures of ``run`` (a :class:`_FlowRun` after its forward), or ``None`` when the
    batch has no float input and no embedding to move, the output has no per-sample reading, or the model's eval
    forward is not reproducible under a fixed seed (nothing to compare against)."""
    probe = _Probe(run)
    with _buffers_kept(run.model):
        base = probe._call(0.0)
        again = probe._call(0.0)
        if base is None or again is None or base.shape != again.shape or not torch.equal(base, again):
            return None
        run.seeded_output = base  # the permutation probe's unmoved forward: the same call, the same seed
        full, half = probe._call(RELATIVE), probe._call(RELATIVE / 2)
    if full is None or half is None or full.shape != base.shape or half.shape != base.shape:
        return None
    layouts = []
    for (layout, b), (_, f), (_, h) in zip(*(flow.per_sample_views(t, run.size) for t in (base, full, half))):
        layouts.append((layout, b, f, h))
    if not layouts:
        return None
    return judge(layouts, run.tolerance)


def locate(run: Any) -> Optional[dict[str, Any]]:
    """Where the other samples' values first differ between the seeded forward as given and with sample 0 moved,
    walking the forward in call order (:meth:`_Recorder.transition`)."""
    from lightning_sanity.callbacks._flow_run import _Recorder

    def others(t: torch.Tensor) -> Optional[torch.Tensor]:
        dim = flow.batch_dim(t, run.size)
        if dim is None or not t.is_floating_point():
            return None
        return t.detach().movedim(dim, 0).reshape(run.size, -1)[1:].double().sum(1).cpu()

    probe = _Probe(run)
    records = []
    with _buffers_kept(run.model):
        for relative in (0.0, RELATIVE):
            recorder = _Recorder(run.model, others)
            probe._call(relative, recorder)
            records.append(recorder)
    base, moved = records
    if len(base.values) != len(moved.values):
        return None
    # Flag "the other samples are still as they were": the transition is the last place where they were.
    flags = [None if (a is None or b is None or a.shape != b.shape) else torch.equal(a, b)
             for a, b in zip(base.values, moved.values)]
    return moved.transition(flags)


def _sequence_first(run: Any, size: int) -> bool:
    """Whether an input is sequence-first: its first axis is time, not the samples."""
    return any(t.dim() >= 2 and t.shape[0] != size and t.shape[1] == size for t in tensors_of((run.args, run.kwargs)))


def _seeded(run: Any, change: Any, seed: int, size: int) -> Optional[torch.Tensor]:
    """The first output tensor of ``size`` samples of a no-grad forward on the probe's inputs with every tensor
    passed through ``change``, at ``seed``."""
    args, kwargs = map_tensors(run.args, change), map_tensors(run.kwargs, change)
    seed_global(seed)  # the caller's isolate_rng() puts the global RNG back
    with torch.no_grad():
        return flow.first_output_tensor(run.fn(args, kwargs), size)


def permutation_probe(run: Any) -> Optional[dict[str, Any]]:
    """Outputs of the batch with its samples rolled one place, put back in order, against the outputs as given
    (:mod:`lightning_sanity.checks.batch_permutation`): one more seeded forward, and one with another seed only
    when most samples changed (noise drawn per row, not per sample). None when not judged."""
    if P.routed(run.model) is not None:
        return None
    size = run.size
    if _sequence_first(run, size):
        return None

    def call(seed: int, rolled: bool) -> Optional[torch.Tensor]:
        return _seeded(run, (lambda t: P.roll(t, size)) if rolled else (lambda t: t), seed, size)

    with _buffers_kept(run.model):
        base = getattr(run, "seeded_output", None)
        base, rolled = (call(_SEED, False) if base is None else base), call(_SEED, True)
        if base is None or rolled is None or base.shape[0] != size or rolled.shape != base.shape:
            return None
        result = P.judge(base, P.unroll(rolled, size))
        if result["mixing"]:
            other = call(_SEED + 1, False)
            if other is None or other.shape != base.shape or not torch.equal(other, base):
                return None  # forward draws noise: reordering moves each sample's draw
    return result


def subbatch_probe(run: Any) -> Optional[dict[str, Any]]:
    """Outputs of the first half of the samples run alone against the same samples' outputs within the batch
    (:func:`lightning_sanity.checks.batch_permutation.judge`): one more seeded forward on half the samples, and one
    with another seed only when most samples changed (noise drawn in ``forward``). Sees a statistic over the whole
    batch that neither a gradient, a small move of one sample nor a reordering changes: a masked mean divided by
    the batch's token count (``mask.sum()`` where ``mask.sum(1)`` was meant). None when not judged."""
    size, half = run.size, run.size // 2
    if size < 4 or P.routed(run.model) is not None or run.tolerance > flow.LEAK_TOLERANCE:
        # Capacity-limited routing depends on which samples share the batch, by design; a raised leak_fraction
        # accepts some dependence on the batch's statistics, which is all this probe measures.
        return None
    if _sequence_first(run, size):
        return None

    def call(seed: int) -> Optional[torch.Tensor]:
        return _seeded(run, lambda t: t[:half] if t.dim() > 0 and t.shape[0] == size else t, seed, half)

    with _buffers_kept(run.model):
        base = getattr(run, "seeded_output", None)
        alone = call(_SEED)
        if base is None or alone is None or base.shape[0] != size or alone.shape[0] != half:
            return None
        within = base[:half]
        if base.dim() >= 2 and base.shape[1] == size and alone.shape[1] == half:
            within = within[:, :half]  # (B, B) similarities: the sub-batch's own block
        result = P.judge(within, alone)
        if result["mixing"]:
            other = call(_SEED + 1)
            if other is None or other.shape != alone.shape or not torch.equal(other, alone):
                return None  # forward draws noise: a smaller batch draws other values
    return result


def judge_forward(callback: Any, trainer: Any, run: Any, gradient_detail: str) -> None:
    """The forward-value half of ``batch-mixing``, for a model whose gradients showed no mixing: detail, and a
    warning when moving sample 0 moves every other sample's output in proportion."""
    from lightning_sanity.callbacks._flow_run import _place
    from lightning_sanity.findings import Severity

    check = "batch-mixing"
    try:
        result = forward_probe(run)
    except Exception as err:  # the gradient verdict stands; the probe only adds to it
        callback.detail(trainer, check, f"{gradient_detail}; forward values not compared (the moved forward "
                                        f"raised {err!r})")
        return
    if result is None:
        callback.detail(trainer, check, f"{gradient_detail}; forward values not compared (no float input or "
                                        "embedding to move, or an eval forward that differs between two calls)")
        return
    detail = (f"{gradient_detail}; moving sample 0's input moves {result['moved']} of {result['others_count']} "
              f"other output(s), share {result['leak']:.2g}")
    if not result["mixing"]:
        report_permutation(callback, trainer, run, detail)
        return
    callback.detail(trainer, check, detail)
    spot = locate(run)
    where, located = None, ""
    if spot:
        where = spot["inside"] or spot["before"] or None
        located = f" The samples get mixed {_place(spot, run.model)}."
    callback.report(
        trainer, check, Severity.WARNING,
        f"Every other sample's output moves when only sample 0's input is moved ({result['leak']:.1%} of the "
        f"change lands on other samples, in proportion to the move, in eval mode) although no gradient flows "
        f"between samples: statistics over the batch that are detached or computed without grad.{located}",
        "Look for a mean/std/var/max taken over dimension 0 (e.g. `x.mean(dim=(0, 1))` where `dim=1` was meant "
        "in a RevIN or per-window normaliser) whose result is `.detach()`-ed or computed under `no_grad`.",
        where=where, key="mixing",
        data={"sample": 0, "leak_fraction": result["leak"], "other_samples": result["others"],
              "output_layout": result["layout"], "called_as": run.how, "forward_values": True,
              "proportional_ratio": result["ratio"],
              **({"after": spot["after"], "before": spot["before"], "inside": spot["inside"]} if spot else {})},
    )


def _probe(callback: Any, trainer: Any, detail: str, probe: Any, run: Any, failed: str) -> Optional[dict[str, Any]]:
    """``probe(run)``'s result; None (with ``detail`` shown, and why when it failed) when it has no verdict."""
    try:
        result = probe(run)
    except Exception as err:  # the other verdicts stand
        callback.detail(trainer, "batch-mixing", f"{detail}; {failed} ({err!r})")
        return None
    if result is None:
        callback.detail(trainer, "batch-mixing", detail)
    return result


def report_permutation(callback: Any, trainer: Any, run: Any, detail: str) -> None:
    """The permutation half of the forward-value probe: detail, and a warning when reordering the batch changes
    most samples' outputs."""
    from lightning_sanity.findings import Severity

    check = "batch-mixing"
    result = _probe(callback, trainer, detail, permutation_probe, run, "reordered batch not compared")
    if result is None:
        return
    detail = f"{detail}; reordering the batch changes {result['changed']} of {result['samples']} output(s)"
    if not result["mixing"]:
        report_subbatch(callback, trainer, run, detail)
        return
    callback.detail(trainer, check, detail)
    callback.report(
        trainer, check, Severity.WARNING,
        f"Reordering the samples of the batch changes {result['changed']} of {result['samples']} samples' outputs "
        f"(by up to {result['largest']:.2g} of their size, in eval mode, the same seed): each sample's output "
        "depends on its place in the batch or on the samples around it. Neither gradients nor a small move of "
        "one sample show it: the mixing goes through integers (ids, counts, positions).",
        "Look for a cumulative sum, count or index taken over dimension 0 (e.g. position ids from "
        "`attention_mask.cumsum(0)` where `cumsum(-1)` was meant), ids built from the row index, or a `view` that "
        "interleaves the samples with another axis (`torch.stack(chunks).view(B, C, -1)` where "
        "`torch.stack(chunks, dim=1)` was meant).",
        key="permutation",
        data={"changed_samples": result["changed"], "samples": result["samples"], "largest_change": result["largest"],
              "called_as": run.how, "permutation": True},
    )


def report_subbatch(callback: Any, trainer: Any, run: Any, detail: str) -> None:
    """The sub-batch half of the forward-value probe: detail, and a warning when the first half of the samples run
    alone get other outputs than within the whole batch."""
    from lightning_sanity.findings import Severity

    check = "batch-mixing"
    result = _probe(callback, trainer, detail, subbatch_probe, run, "half batch not compared")
    if result is None:
        return
    callback.detail(trainer, check, f"{detail}; running half the batch alone changes {result['changed']} of "
                                    f"{result['samples']} output(s)")
    if not result["mixing"]:
        return
    callback.report(
        trainer, check, Severity.WARNING,
        f"The first {result['samples']} samples run alone get other outputs than within the whole batch "
        f"({result['changed']} of {result['samples']} changed, by up to {result['largest']:.2g} of their size, in "
        "eval mode, the same seed): each sample's output depends on which samples share its batch, through a "
        "statistic over the whole batch that neither gradients nor moving or reordering samples show.",
        "Look for a sum, count or mean over the whole batch where a per-sample one was meant (e.g. masked mean "
        "pooling divided by `mask.sum()` instead of `mask.sum(1, keepdim=True)`), or `x.shape[0]`/`len(batch)` "
        "used as a per-sample size.",
        key="subbatch",
        data={"changed_samples": result["changed"], "samples": result["samples"], "largest_change": result["largest"],
              "called_as": run.how, "subbatch": True},
    )

"""``batch-mixing`` behind a pairwise output: a dual encoder, CLIP-style model or siamese network whose forward returns
the ``(B, B)`` similarity matrix compares samples by design, so its output cannot be tested per sample; the
embeddings it compares can. :func:`judge_pairwise` is called by :class:`~lightning_sanity.callbacks.batch_mixing._BatchMixingGlue`
when the model's output is pairwise.

The first batch's flow forward is run once more with forward hooks on every submodule, recording each call's output.
The outermost calls whose output has a batch dimension and is not itself pairwise (the encoders' embeddings; an
encoder called twice, for queries and passages, gives two) are tested as the model output is: the gradient of sample
``i``'s row there must not reach the inputs of other samples. A ``F.normalize(z, dim=0)`` (each feature normalised
over the batch instead of each embedding over its features) or a mean over the batch inside an encoder makes every
embedding depend on the rest of its batch: retrieval scores then change with the batch size, and the in-batch
negatives leak into the positives. BatchNorm runs with its running statistics, as the rest of the check does.

Example::

    >>> import torch
    >>> from torch import nn
    >>> class Encoder(nn.Module):
    ...     def __init__(self, dim): super().__init__(); self.dim, self.proj = dim, nn.Linear(4, 3)
    ...     def forward(self, x): return nn.functional.normalize(self.proj(x), dim=self.dim)
    >>> class Siamese(nn.Module):
    ...     def __init__(self, dim): super().__init__(); self.enc = Encoder(dim)
    ...     def forward(self, a, b): return self.enc(a) @ self.enc(b).T
    >>> def probe(dim):
    ...     model, a, b = Siamese(dim), torch.randn(6, 4), torch.randn(6, 4)
    ...     run = _FlowRun(model, (lambda args, kw: model(*args), "model(a, b)", (a, b), {}), 6, 3)
    ...     return pairwise_submodule_mixing(run)
    >>> probe(-1)["module"], probe(-1)["leak"], probe(0)["module"], probe(0)["leak"] > 0.1
    ('enc', 0.0, 'enc', True)
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from lightning_sanity.batch import first_tensor
from lightning_sanity.callbacks._extra_forward import module_calls
from lightning_sanity.callbacks._flow_run import _FlowRun, _SkipOne
from lightning_sanity.checks import flow
from lightning_sanity.findings import Severity

#: Submodule calls tested at most (each costs ``flow_samples`` backward passes per output layout): a dual encoder
#: has two, a CLIP-style model two, a triplet network three.
MAX_CALLS = 6


class _OutputRecorder:
    """Forward hooks on every submodule (not the root) recording, in call order, ``(name, enter, exit, output)``:
    the output's first tensor, whatever it is."""

    def __init__(self, model: nn.Module) -> None:
        self.calls: list[tuple[str, int, int, Optional[torch.Tensor]]] = []
        self._clock = 0
        self._hooks = module_calls(model, self._start, self._end, submodules_only=True)

    def _start(self, name: str, args: Any) -> int:
        self._clock += 1
        return self._clock

    def _end(self, name: str, start: Optional[int], output: Any) -> None:
        self._clock += 1
        self.calls.append((name, self._clock if start is None else start, self._clock, first_tensor(output)))

    def __enter__(self) -> "_OutputRecorder":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._hooks.__exit__(*exc)

    def outermost(self, size: int) -> list[tuple[str, torch.Tensor]]:
        """The outermost calls whose output has a batch dimension of ``size``, is not pairwise and follows the
        inputs differentiably; calls inside a pairwise one (a similarity head) are looked into."""
        chosen: list[tuple[str, int, int, torch.Tensor]] = []
        for name, start, end, out in sorted(self.calls, key=lambda c: (c[1], -c[2])):
            if any(s <= start and end <= e for _, s, e, _ in chosen):
                continue
            if (isinstance(out, torch.Tensor) and out.is_floating_point() and out.requires_grad
                    and flow.per_sample_views(out, size) and not flow.is_pairwise_output(out, size)):
                chosen.append((name, start, end, out))
        return [(name, out) for name, _, _, out in chosen[:MAX_CALLS]]


def pairwise_submodule_mixing(run: _FlowRun) -> Optional[dict[str, Any]]:
    """The worst cross-sample gradient share over the outermost per-sample submodule outputs of ``run``'s model (see
    the module docstring): ``{"leak", "sample", "others", "layout", "module", "call", "modules"}``, or None when the
    model calls no such submodule. Runs one forward and its backward passes; the caller sets eval mode and grad."""
    recorder = _OutputRecorder(run.model)
    run.forward(record=recorder)
    outputs = recorder.outermost(run.size)
    if not outputs or not run.leaves:
        return None
    indices = flow.sample_indices(run.size, run.samples)
    worst: Optional[dict[str, Any]] = None
    seen: dict[str, int] = {}
    for name, out in outputs:
        seen[name] = seen.get(name, 0) + 1
        best: Optional[dict[str, Any]] = None  # the layout that shows the least mixing
        for layout, rows in flow.per_sample_views(out, run.size):
            result = {**run.worst_leak(rows, indices), "layout": layout, "module": name, "call": seen[name]}
            if best is None or result["leak"] < best["leak"]:
                best = result
        if best is not None and (worst is None or best["leak"] > worst["leak"]):
            worst = best
    if worst is not None:
        worst["modules"] = list(seen)
    return worst


def judge_pairwise(callback: Any, trainer: Any, run: _FlowRun) -> None:
    """``batch-mixing``'s finding (or detail) for a model whose output is pairwise."""
    check = "batch-mixing"
    result = pairwise_submodule_mixing(run)
    if result is None:
        raise _SkipOne(check, "the output is a (batch, batch) matrix, which compares samples by design, and no "
                              "submodule returns per-sample outputs to test instead")
    modules = ", ".join(f"`{m}`" for m in result["modules"])
    callback.detail(trainer, check, f"pairwise output; largest cross-sample gradient share {result['leak']:.2g} at the "
                                    f"outputs of {modules}")
    if not flow.is_mixing(result["leak"], run.tolerance):
        return
    module, call = result["module"], result["call"]
    which = f" (call {call})" if call > 1 else ""
    callback.report(
        trainer, check, Severity.WARNING,
        f"The model's output is a (batch, batch) matrix, which compares samples by design, but the per-sample output "
        f"of `{module}`{which} already mixes them: sample {result['sample']}'s row depends on other samples of the "
        f"batch (e.g. {result['others']}), {result['leak']:.1%} of its input gradient lands on them, in eval mode. "
        "The embeddings compared then change with the batch they come in (and its size).",
        f"Compute each embedding from its own sample only: normalise over the feature dimension "
        f"(`F.normalize(z, dim=-1)`, never `dim=0`) and keep means, softmaxes and other reductions inside `{module}` "
        "off dimension 0; the comparison between samples belongs in the similarity matrix only.",
        where=module, key="mixing",
        data={"sample": result["sample"], "leak_fraction": result["leak"], "other_samples": result["others"],
              "output_layout": result["layout"], "called_as": run.how, "module": module, "call": call,
              "pairwise_output": True},
    )

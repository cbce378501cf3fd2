"""``batch-mixing`` glue: does each sample's output depend on that sample's input alone?

Mixed into :class:`~lightning_sanity.callbacks.model_checks.ModelChecks`, which calls :meth:`_judge_mixing` on the
first batch's :class:`~lightning_sanity.callbacks._flow_run._FlowRun`; the judgement is in
:mod:`lightning_sanity.checks.flow`.
"""

from __future__ import annotations

import lightning.pytorch as pl
from torch.nn.modules.batchnorm import _BatchNorm

from lightning_sanity.batch import tensors_of
from lightning_sanity.callbacks._flow_run import _FlowRun, _place, _SkipOne
from lightning_sanity.callbacks._forward_mixing import judge_forward, report_permutation
from lightning_sanity.callbacks._padding_probe import judge_padding
from lightning_sanity.callbacks._submodule_mixing import judge_pairwise
from lightning_sanity.checks import flow
from lightning_sanity.checks.modes import summarize_names
from lightning_sanity.findings import Severity


def _all_per_sample(run: "_FlowRun") -> bool:
    """Whether every tensor the model call gets (lists and dicts of them included) has the samples first."""
    return all(t.dim() > 0 and t.shape[0] == run.size for t in tensors_of((run.args, run.kwargs)))


class _BatchMixingGlue:
    """The ``batch-mixing`` findings of :class:`~lightning_sanity.callbacks.model_checks.ModelChecks`."""

    def _judge_mixing(self, trainer: "pl.Trainer", run: "_FlowRun") -> None:
        check, how, pl_module = "batch-mixing", run.how, run.model
        stats_free = [n for n, m in pl_module.named_modules() if isinstance(m, _BatchNorm) and m.running_mean is None]
        if stats_free:
            raise _SkipOne(check, f"BatchNorm without running statistics ({summarize_names(stats_free, 3)}) uses "
                                  "batch statistics even in eval mode, which mixes samples by design")
        if not run.leaves:
            if run.int_inputs and not run.pairwise and _all_per_sample(run):
                # Ids with a batch dimension whose embeddings see another layout (multiple choice flattens
                # `(B, C, S)` to `(B * C, S)` first): no gradient to take per sample, but whole samples can still
                # be reordered and halved, which needs no float input. Only when every input has the sample axis
                # first: a flat token stream with `(B,)` offsets (EmbeddingBag) breaks when the offsets move alone.
                report_permutation(self, trainer, run, "no float input or per-sample embedding output to take the "
                                                       "gradient at: whole samples compared")
                return
            raise _SkipOne(check, "no float input tensor or embedding output with a batch dimension to take the gradient at")
        if not run.output.requires_grad:
            raise _SkipOne(check, "the output does not depend differentiably on the input (no gradient to follow)")
        if any(t.dim() == 2 and tuple(t.shape) == (run.size, run.size) for t in tensors_of((run.args, run.kwargs))):
            # An (N, N) matrix over the samples, handed to the model: a graph's dense adjacency, through which its
            # nodes mix by design (GraphSAGE, GCN on a whole graph), or a pairwise mask the model applies.
            raise _SkipOne(check, f"`{how}` is given a {run.size} x {run.size} matrix over the batch's samples (a "
                                  "graph's dense adjacency: its nodes mix through it by design)")
        result = run.mixing()
        detail = f"largest cross-sample gradient share {result['leak']:.2g} over {len(result['samples'])} sample(s)"
        self.detail(trainer, check, detail)
        if not flow.is_mixing(result["leak"], run.tolerance):
            if not run.pairwise:  # detached batch statistics carry no gradient: compare forward values
                judge_forward(self, trainer, run, detail)
                judge_padding(self, trainer, run)  # nor do padding positions a model reads
            return
        if run.pairwise:  # compares samples by design: test the embeddings it compares instead
            judge_pairwise(self, trainer, run)
            return
        spot = run.locate_mixing(result["sample"], result["layout"])
        where = None
        located = ""
        if spot:
            inside, before = spot["inside"], spot["before"]
            where = inside if inside else (before or None)
            located = f" The samples get mixed {_place(spot, pl_module)}."
        self.report(
            trainer, check, Severity.WARNING,
            f"Sample {result['sample']}'s output depends on other samples of the batch (e.g. {result['others']}): "
            f"{result['leak']:.1%} of its input gradient lands on them, in eval mode.{located}",
            "Look for a `view`/`reshape` that moves the batch dimension (use `permute`/`transpose` to reorder "
            "dimensions, and `batch_first=True` for RNNs and attention) or a reduction over dimension 0 inside "
            "forward.",
            where=where, key="mixing",
            data={"sample": result["sample"], "leak_fraction": result["leak"], "other_samples": result["others"],
                  "output_layout": result["layout"], "called_as": how,
                  **({"after": spot["after"], "before": spot["before"], "inside": spot["inside"]} if spot else {})},
        )

"""The loss inspector's ``loss-input`` finding for ``poisson_nll_loss`` fed a rate where it expects a log-rate (glue,
no math: that is :func:`lightning_sanity.checks.loss_inputs.poisson_rate_floor_problem`).

The first step's watch sees the call: ``log_input=True`` and an input produced by an activation that is never
negative (Softplus, ReLU, exp; the step watch tags it). The first batch's count targets are judged at once; when
they do not settle it and the call's target is the batch's target, the batch targets of the rest of the first
epoch are tallied on the device (no sync) and judged once at its end.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import torch
import torch.nn.functional as F

from lightning_sanity.checks import loss_inputs as LI
from lightning_sanity.findings import Severity

_SIGNATURE = inspect.signature(F.poisson_nll_loss)


class PoissonWatch:
    """A ``poisson_nll_loss`` call of the first step whose log-rate input can never be negative."""

    def __init__(self, head: str, where: Optional[str], tally: torch.Tensor, follow: bool) -> None:
        self.head, self.where, self.tally, self.follow = head, where, tally, follow
        self.batches = 1


def first_call(cb: Any, trainer: Any, args: tuple, kwargs: dict, tags: Any, target_is_batch: Any) -> Optional[PoissonWatch]:
    """Judge a ``poisson_nll_loss`` call of the first step; a :class:`PoissonWatch` to follow over the first epoch
    when its batch did not settle it, else None. ``target_is_batch(target)`` says whether the target is the
    batch's target (only then can later batches stand for it)."""
    bound = _SIGNATURE.bind(*args, **kwargs)
    bound.apply_defaults()
    a = bound.arguments
    x, target = a.get("input"), a.get("target")
    if not a.get("log_input", True) or not isinstance(x, torch.Tensor) or not isinstance(target, torch.Tensor):
        return None
    tag = tags.get(x) or {}
    head = tag.get("nonnegative")
    # The activation makes the bound structural: not "no negative value yet" but "never a negative value".
    if not head or x.numel() == 0 or float(x.detach().min()) < 0:
        return None
    watch = PoissonWatch(head, tag.get("module"), LI.poisson_tally(target), bool(target_is_batch(target)))
    if judge(cb, trainer, watch):
        return None
    return watch if watch.follow else None


def add_batch(watch: PoissonWatch, target: Any) -> None:
    """Tally one more batch's targets (on their device, no sync)."""
    if isinstance(target, torch.Tensor) and target.numel():
        watch.tally = watch.tally + LI.poisson_tally(target).to(watch.tally.device)
        watch.batches += 1


def judge(cb: Any, trainer: Any, watch: PoissonWatch) -> bool:
    """Report the finding when the tallied counts need rates below 1; whether it was reported."""
    problem = LI.poisson_rate_floor_problem(watch.tally.cpu())
    if problem is None:
        return False
    why = (f"their mean {problem['mean_count']:.3g} is below 1 (at most {problem['mean_count_upper']:.3g})"
           if problem["mean_count_upper"] < 1 else
           f"{problem['zero_share']:.0%} of them are 0 (at least {problem['zero_share_lower']:.0%}), more than the "
           f"{problem['zero_share_bound']:.0%} that rates >= 1 allow")
    cb.report(
        trainer, "loss-input", Severity.ERROR,
        f"poisson_nll_loss reads its input as a log-rate (log_input=True, the default), but the input comes from a "
        f"{watch.head} and is never negative: every rate the model can express is exp(input) >= 1. The count "
        f"targets need rates below 1: {why} (over {problem['targets']} targets of {watch.batches} batch"
        f"{'es' if watch.batches > 1 else ''}).",
        f"If the model outputs the rate itself, pass `log_input=False` (nn.PoissonNLLLoss(log_input=False)); if it "
        f"should output the log-rate, remove the {watch.head} so the output can be negative.",
        where=watch.where, data={"loss": "poisson_nll_loss", "activation": watch.head, "batches": watch.batches,
                                 **problem})
    return True

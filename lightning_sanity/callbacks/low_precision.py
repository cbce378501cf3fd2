r"""
Low-precision updates
^^^^^^^^^^^^^^^^^^^^^

``update-ratio`` kind ``rounds-away``, part of :class:`~lightning_sanity.callbacks.norms.NormMonitor`'s update-ratio
verdicts: weights kept in bfloat16/float16 with no float32 master copy (``precision="bf16-true"``) whose
Adam-family steps are smaller than half an ulp of the weights round away. Judged from first principles
(:mod:`lightning_sanity.checks.low_precision`): the peak ``lr`` of each param group against ``|w| * eps(dtype) / 2``
at the median weight of each parameter; no norm is needed, so it is judged whatever the norms measured.

The monitor holds a :class:`RoundingWatch` (fresh at each fit start) and calls it from three hooks:
``on_train_start`` (:meth:`RoundingWatch.start`: list the trainable low-precision parameters under an Adam-family
optimizer), ``on_train_batch_start`` (:meth:`RoundingWatch.read_lr`: keep each group's peak lr) and ``conclude``
(:func:`conclude_rounds_away`). With no such parameter (float32 weights, ``bf16-mixed``, SGD) the watch is idle and
costs nothing per batch.

Cost: a scan of the optimizers' param groups at ``on_train_start``; per batch, only for runs with low-precision
weights, one Python float read per param group; one median per parameter (on a sample of at most 65536 elements)
at the end of fit. No TensorBoard tags.

Example::

    >>> watch = RoundingWatch()
    >>> watch.watching
    False
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch

from lightning_sanity.checks import low_precision as LP
from lightning_sanity.checks.naming import short_list
from lightning_sanity.findings import Severity

if TYPE_CHECKING:
    import lightning.pytorch as pl

    from lightning_sanity.callbacks.base import SanityCallback

log = logging.getLogger(__name__)
CHECK = "update-ratio"


class RoundingWatch:
    """The Adam-family param groups with trainable low-precision weights, and the peak lr each one reached."""

    def __init__(self) -> None:
        self.groups: list[tuple[dict, list[tuple[str, torch.Tensor]]]] = []
        self.peak: list[float] = []

    @property
    def watching(self) -> bool:
        """True while there are groups whose lr must be read at each batch start."""
        return bool(self.groups)

    def start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """List the trainable bfloat16/float16 parameters under an Adam-family optimizer (a step of about ``lr``
        per element); none leaves the watch idle."""
        try:
            names = {id(p): n for n, p in pl_module.named_parameters()}
            for optimizer in trainer.optimizers:
                if not LP.is_adam_family(optimizer):
                    continue
                for group in optimizer.param_groups:
                    params = [(names.get(id(p), "?"), p) for p in group["params"]
                              if p.requires_grad and p.dtype in LP.LOW_PRECISION]
                    if params:
                        self.groups.append((group, params))
                        self.peak.append(0.0)
        except Exception:  # never lose the run over a diagnostic
            log.debug("low-precision scan failed", exc_info=True)
            self.groups, self.peak = [], []

    def read_lr(self) -> None:
        """Keep each watched group's peak lr (host floats only)."""
        for i, (group, _) in enumerate(self.groups):
            lr = group.get("lr")
            if isinstance(lr, torch.Tensor):
                if lr.device.type != "cpu":  # a device read each step would cost a sync: the first read stands
                    continue
                lr = float(lr)
            if isinstance(lr, (int, float)) and lr > self.peak[i]:
                self.peak[i] = float(lr)


def conclude_rounds_away(callback: "SanityCallback", watch: RoundingWatch, trainer: "pl.Trainer") -> None:
    """Report ``rounds-away`` through ``callback`` when the parameters whose peak lr is below half an ulp of their
    median ``|w|`` hold at least half of the watched elements."""
    if not watch.groups or not callback.is_enabled(CHECK) or not trainer.is_global_zero:
        return
    if not any(watch.peak):
        return  # no step was taken (or no readable lr): nothing to judge
    try:
        rows = []
        with torch.no_grad():
            for (_, params), peak in zip(watch.groups, watch.peak):
                rows += [(name, p.numel(), LP.half_ulp(p), peak) for name, p in params if p.numel()]
        verdict = LP.judge_rounding(rows)
    except Exception as err:  # a check must never lose the user's run
        log.warning("lightning_sanity: the rounds-away judgement of update-ratio failed: %r", err)
        return
    if verdict is None:
        return
    dtype = str(watch.groups[0][1][0][1].dtype).replace("torch.", "")
    callback.report(
        trainer, CHECK, Severity.WARNING,
        f"Most updates round away: the weights are stored in {dtype} with no float32 copy, and an Adam-family "
        f"step (about lr = {max(watch.peak):.2g} per element at its peak) is below half the spacing of "
        f"representable values at the median weight in {len(verdict.layers)} parameter(s) "
        f"({short_list(verdict.layers)}), {verdict.share:.0%} of the trainable elements: those steps are lost.",
        "Keep float32 master weights: `precision=\"bf16-mixed\"` (or \"16-mixed\") instead of \"bf16-true\"; "
        "otherwise raise the learning rate well above |w| x eps / 2, or use an optimizer with float32 master "
        "weights or stochastic rounding.",
        where=verdict.layers[0], at_step=False, key="rounds-away", data=verdict.data,
    )

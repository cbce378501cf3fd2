r"""
Low-precision updates
^^^^^^^^^^^^^^^^^^^^^

``update-ratio`` for weights kept in bfloat16/float16 with no float32 master copy (``precision="bf16-true"``):
Adam-family steps smaller than half an ulp of the weights round away. Judged from first principles
(:mod:`lightning_sanity.checks.low_precision`): the peak ``lr`` of each param group against ``|w| * eps(dtype) / 2``
at the median weight of each parameter.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from lightning_sanity.callbacks.base import SanityCallback
from lightning_sanity.checks import low_precision as LP
from lightning_sanity.checks.norms import short_list
from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)
CHECK = "update-ratio"


class LowPrecisionUpdates(SanityCallback):
    r"""Warn (``update-ratio``, kind ``rounds-away``) when most of the trainable low-precision weights cannot take
    an Adam-family step of the group's peak learning rate.

    At ``on_train_start`` it lists the trainable parameters stored in bfloat16/float16 under an optimizer whose
    class name holds "adam" (a step of about ``lr`` per element); with none (float32 weights, ``bf16-mixed``, SGD)
    it retires its batch hook and stays silent. Otherwise it reads each such group's ``lr`` (a host float) at
    every batch start and keeps the peak, and at the end of fit compares it with half an ulp of each parameter's
    median ``|w|``. It fires when the parameters whose peak lr is below that hold at least half of the elements.

    Cost: a scan of the optimizers' param groups at ``on_train_start``; per batch, only for runs with low-precision
    weights, one Python float read per param group; one median per parameter (on a sample of at most 65536
    elements) at the end of fit. No TensorBoard tags.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.low_precision import LowPrecisionUpdates
        >>> trainer = Trainer(callbacks=[LowPrecisionUpdates()], logger=False)
    """

    checks = (CHECK,)

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.revive()
        self._groups: list[tuple[dict, list[tuple[str, torch.Tensor]]]] = []
        self._peak: list[float] = []

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self._reset()

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        try:
            names = {id(p): n for n, p in pl_module.named_parameters()}
            for optimizer in trainer.optimizers:
                if not LP.is_adam_family(optimizer):
                    continue
                for group in optimizer.param_groups:
                    params = [(names.get(id(p), "?"), p) for p in group["params"]
                              if p.requires_grad and p.dtype in LP.LOW_PRECISION]
                    if params:
                        self._groups.append((group, params))
                        self._peak.append(0.0)
        except Exception:  # never lose the run over a diagnostic
            log.debug("low-precision scan failed", exc_info=True)
            self._groups = []
        if not self._groups:
            self.retire("on_train_batch_start")

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                             batch_idx: int) -> None:
        for i, (group, _) in enumerate(self._groups):
            lr = group.get("lr")
            if isinstance(lr, torch.Tensor):
                if lr.device.type != "cpu":  # a device read each step would cost a sync: the first read stands
                    continue
                lr = float(lr)
            if isinstance(lr, (int, float)) and lr > self._peak[i]:
                self._peak[i] = float(lr)

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self._groups or not self.is_enabled(CHECK) or not trainer.is_global_zero:
            return
        if not any(self._peak):
            return  # no step was taken (or no readable lr): nothing to judge
        rows = []
        with torch.no_grad():
            for (_, params), peak in zip(self._groups, self._peak):
                rows += [(name, p.numel(), LP.half_ulp(p), peak) for name, p in params if p.numel()]
        verdict = LP.judge_rounding(rows)
        if verdict is None:
            return
        dtype = str(self._groups[0][1][0][1].dtype).replace("torch.", "")
        self.report(
            trainer, CHECK, Severity.WARNING,
            f"Most updates round away: the weights are stored in {dtype} with no float32 copy, and an Adam-family "
            f"step (about lr = {max(self._peak):.2g} per element at its peak) is below half the spacing of "
            f"representable values at the median weight in {len(verdict.layers)} parameter(s) "
            f"({short_list(verdict.layers)}), {verdict.share:.0%} of the trainable elements: those steps are lost.",
            "Keep float32 master weights: `precision=\"bf16-mixed\"` (or \"16-mixed\") instead of \"bf16-true\"; "
            "otherwise raise the learning rate well above |w| x eps / 2, or use an optimizer with float32 master "
            "weights or stochastic rounding.",
            where=verdict.layers[0], at_step=False, key="rounds-away", data=verdict.data,
        )

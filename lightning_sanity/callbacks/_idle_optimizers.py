"""``update-ratio`` glue for optimizers that never step (:mod:`lightning_sanity.checks.idle_optimizers`).

Driven by :class:`~lightning_sanity.callbacks.norms.NormMonitor`: :meth:`IdleOptimizerWatch.start` at
``on_train_start`` (the optimizers exist then), :meth:`~IdleOptimizerWatch.stepped` in every
``on_before_optimizer_step`` (a dict increment), :meth:`~IdleOptimizerWatch.epoch_end` at each training epoch's end
and :meth:`~IdleOptimizerWatch.judge` before the summary. The gradients are read (``.grad is not None``, never
written) only for the parameters of optimizers that have not stepped yet: normally none after the first batch.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from typing_extensions import override

from lightning_sanity.checks import flow
from lightning_sanity.checks.idle_optimizers import idle_parameters
from lightning_sanity.checks.modes import summarize_names
from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)

#: Values of each parameter kept from the start to tell "never stepped" from "stepped outside Lightning's hooks".
_FINGERPRINT = 64


class IdleOptimizerWatch:
    """Counts each optimizer's steps over the run and which never-stepped parameters hold gradients."""

    def __init__(self) -> None:
        self.optimizers: list = []
        self.steps: dict[int, int] = {}
        self.with_grad: set[int] = set()
        self.epochs = 0
        self.start_values: dict[int, torch.Tensor] = {}


    def start(self, trainer: "pl.Trainer") -> None:
        self.optimizers = list(trainer.optimizers)
        self.steps, self.with_grad, self.epochs = {}, set(), 0
        # A few values of each parameter at the start: an optimizer stepped without Lightning's hooks (the raw
        # `self.optimizers(use_pl_optimizer=False).step()`) counts no step here but moves its parameters.
        self.start_values = {id(p): p.detach().reshape(-1)[:_FINGERPRINT].clone()
                             for opt in self.optimizers for g in opt.param_groups for p in g["params"]
                             if getattr(p, "requires_grad", False)}

    def stepped(self, optimizer: Any) -> None:
        key = id(optimizer)
        self.steps[key] = self.steps.get(key, 0) + 1

    def epoch_end(self) -> None:
        self.epochs += 1
        self._read_grads()

    def _read_grads(self) -> None:
        for _, params in idle_parameters(self.optimizers, self.steps):
            self.with_grad.update(id(p) for p in params if p.grad is not None)

    def _unmoved(self, p: torch.Tensor) -> bool:
        start = self.start_values.get(id(p))
        return start is not None and torch.equal(start, p.detach().reshape(-1)[:_FINGERPRINT])

    def judge(self, callback: Any, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Report each optimizer that never stepped over a run of at least one whole training epoch although the
        parameters only it holds received gradients: they never move."""
        if not self.optimizers or self.epochs == 0:
            return  # no optimizer, or the run stopped inside its first epoch: too little to say "never"
        self._read_grads()
        names = {id(p): n for n, p in pl_module.named_parameters()}
        trainable = [n for n, p in pl_module.named_parameters() if p.requires_grad]
        for i, params in idle_parameters(self.optimizers, self.steps):
            hit = [names[id(p)] for p in params if id(p) in self.with_grad and id(p) in names
                   and self._unmoved(p)]
            if not hit:
                continue  # no gradient reached them: a phase not trained in this run, not a lost update
            modules = flow.uncovered_modules(hit, trainable)
            opt = self.optimizers[i]
            others = sum(self.steps.values())
            callback.report(
                trainer, "update-ratio", Severity.WARNING,
                f"Optimizer {i} ({type(opt).__name__}) never took a step in {self.epochs} epoch(s) ({others} steps "
                f"of the other optimizers), although its parameters receive gradients: their update ratio is 0, so "
                f"the weights of {summarize_names(modules)} stay at their initialisation.",
                f"Call `step()` on optimizer {i} after the backward of its loss (under manual optimization, a "
                "phase copied from another one may still step the other optimizer, e.g. `opt_d.step()` where "
                "`opt_g.step()` was meant).",
                where=modules[0], at_step=False, key=f"idle-optimizer:{i}",
                data={"kind": "idle-optimizer", "optimizer": i, "optimizer_class": type(opt).__name__,
                      "modules": modules, "parameters": hit[:50], "other_steps": others,
                      "epochs": self.epochs},
            )


class IdleOptimizerHooks:
    """Mixed into :class:`~lightning_sanity.callbacks.norms.NormMonitor`: owns its :class:`IdleOptimizerWatch`,
    which the monitor starts at ``on_train_start``, feeds in ``on_before_optimizer_step`` and judges at the end."""

    _idle: Optional[IdleOptimizerWatch] = None

    def _idle_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._idle = None
        # Lightning steps its own optimizers under automatic optimization: only a manual loop can forget one.
        if ("update-ratio" in self.active_checks and trainer.is_global_zero  # type: ignore[attr-defined]
                and not pl_module.automatic_optimization):
            self._idle = IdleOptimizerWatch()
            self._idle.start(trainer)

    def _idle_stepped(self, optimizer: Any) -> None:
        if self._idle is not None:
            self._idle.stepped(optimizer)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._idle is not None:
            self._idle.epoch_end()

    def _idle_judge(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._idle is None:
            return
        try:
            self._idle.judge(self, trainer, pl_module)
        except Exception:  # a check must never lose the user's run
            log.debug("idle-optimizer judgement failed", exc_info=True)

"""``optimizer-coverage`` glue: does every trainable parameter reach an optimizer, and only this model's?

Mixed into :class:`~lightning_sanity.callbacks.model_checks.ModelChecks`, which calls :meth:`_check_coverage` at
``on_train_start`` and :meth:`_recheck_coverage` at every training epoch's end (parameters unfrozen after the
optimizer was built, as in gradual unfreezing); the comparison itself is
:func:`lightning_sanity.checks.flow.optimizer_coverage`.
"""

from __future__ import annotations

import lightning.pytorch as pl

from lightning_sanity.checks import flow
from lightning_sanity.checks.unregistered import unregistered_in_graph
from lightning_sanity.checks.modes import summarize_names
from lightning_sanity.findings import Severity


class _OptimizerCoverageGlue:
    """The ``optimizer-coverage`` findings of :class:`~lightning_sanity.callbacks.model_checks.ModelChecks`."""

    def _check_coverage(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        optimizers = list(trainer.optimizers)
        self._coverage_reported: set[str] = set()
        if not optimizers:
            self.skip(trainer, "optimizer-coverage", "no optimizer is configured")
            return
        held = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        named = list(pl_module.named_parameters())
        cov = flow.optimizer_coverage(named, held)
        self._coverage_reported.update(cov.uncovered)
        check = "optimizer-coverage"
        self._coverage_detail = (f"{cov.trainable} trainable tensors, {len(optimizers)} optimizer(s), "
                                 f"{len(cov.uncovered)} left out, {cov.foreign} foreign")
        self.detail(trainer, check, self._coverage_detail)
        if cov.foreign:
            some_owned = any(id(p) in {id(q) for q in held} for _, p in named if p.requires_grad)
            self.report(
                trainer, check, Severity.ERROR,
                f"The optimizer holds {cov.foreign} parameter tensor(s) ({cov.foreign_numel:,} values, shapes "
                f"{cov.foreign_shapes}) that are not parameters of {type(pl_module).__name__}, so updates go to "
                f"another model" + ("" if some_owned else " and the model itself is never updated") + ".",
                "Build the optimizer from this module's parameters inside `configure_optimizers` "
                "(`torch.optim.Adam(self.parameters(), ...)`), not from a model object created elsewhere; "
                "register every trained sub-network as an attribute of the LightningModule.",
                at_step=False, key="foreign",
                data={"foreign_tensors": cov.foreign, "foreign_values": cov.foreign_numel,
                      "foreign_shapes": cov.foreign_shapes, "optimizers": len(optimizers)},
            )
        self._coverage_pending: list[str] = []
        if cov.uncovered and not (cov.foreign and len(cov.uncovered) == cov.trainable):
            # (When the optimizer holds none of the model, the error above already says everything.)
            # Judged once a backward pass has run (:meth:`_judge_pending_coverage`): a tensor left out of the
            # optimizer by mistake is in the loss graph and receives gradients that nothing applies; a copy kept
            # beside the model (an EMA / SWA ``AveragedModel``, a momentum teacher) is outside the graph and never
            # gets one.
            self._coverage_pending = list(cov.uncovered)
        self._coverage_steps_seen = False

    def _check_unregistered(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss) -> None:
        """Parameters the first backward's loss reaches that the module does not own and no optimizer holds (layers
        kept in a plain Python list): one walk of the graph, once (:mod:`lightning_sanity.checks.unregistered`)."""
        if getattr(self, "_coverage_reported", None) is None:
            return  # the fit-start check was skipped (no optimizer) or did not run
        held = [p for opt in trainer.optimizers for group in opt.param_groups for p in group["params"]]
        found = unregistered_in_graph(loss, pl_module, held)
        if found is None:
            return
        self.detail(trainer, "optimizer-coverage", f"{self._coverage_detail}; {found['tensors']} unregistered "
                                                   "parameter tensor(s) reach the loss")
        where = ", ".join(f"`{c}`" for c in found["containers"][:4])
        held_in = (f"held in {where}" + (f" and {found['elsewhere']} elsewhere" if found["elsewhere"] else "")
                   if found["containers"] else f"shapes {found['shapes']}")
        cls = type(pl_module).__name__
        if found["all_eval"]:  # a reference model put in eval mode by hand, outside the module on purpose
            self.report(
                trainer, "optimizer-coverage", Severity.INFO,
                f"{found['tensors']} parameter tensor(s) of modules in eval mode kept outside {cls} ({held_in}) "
                "receive gradients that no optimizer applies: a fixed reference model, presumably.",
                "Set `requires_grad_(False)` on it or run it under `torch.no_grad()` to save its backward pass.",
                where=found["containers"][0], key="unregistered-eval", data=found)
            return
        self.report(
            trainer, "optimizer-coverage", Severity.WARNING,
            f"{found['tensors']} parameter tensor(s) ({found['values']:,} values, {held_in}) reach the training loss "
            f"but are not registered in {cls}, so `self.parameters()` and every optimizer miss them: they receive "
            "gradients and are never updated, staying at their initial values while the rest of the model learns around them.",
            "Keep layers in `nn.ModuleList` / `nn.ModuleDict` (or `nn.ParameterList`), not in a plain list, dict or "
            "an object outside the module; a reference model meant to stay fixed takes `requires_grad_(False)`.",
            where=(found["containers"] or [None])[0], key="unregistered", data=found)

    def _judge_pending_coverage(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", *,
                                final: bool = False) -> None:
        """Report the uncovered tensors that hold a gradient by now; at the end (``final``), the rest.

        Called at the end of the first training batch, at every training epoch's end and before the summary:
        one pass over the uncovered tensors each time, nothing per step. A gradient that lands on a tensor no
        optimizer holds is never zeroed by ``optimizer.zero_grad()``, so ``.grad is not None`` (read, never
        written) at any later point says that backward reached it at least once.
        """
        pending = getattr(self, "_coverage_pending", None)
        if not pending:
            return
        by_name = dict(pl_module.named_parameters())
        pending = [n for n in pending if n in by_name]
        named = list(by_name.items())
        with_grad = [n for n in pending if by_name[n].grad is not None]
        if with_grad or (final and not self._coverage_steps_seen):
            # No training batch ended (the fit stopped in its first step): the gradients cannot tell, so every
            # uncovered tensor is reported as before.
            self._report_uncovered(trainer, named, with_grad or pending, receive_grad=bool(with_grad))
        pending = [n for n in pending if n not in set(with_grad)]
        self._coverage_pending = pending
        if final and pending and self._coverage_steps_seen:
            self._report_gradient_free(trainer, pl_module, named, pending)
            self._coverage_pending = []

    def _report_uncovered(self, trainer: "pl.Trainer", named: list, uncovered: list[str], *,
                          receive_grad: bool) -> None:
        trainable = [n for n, p in named if p.requires_grad]
        modules = flow.uncovered_modules(uncovered, trainable)
        numel = sum(p.numel() for n, p in named if n in set(uncovered))
        self.report(
            trainer, "optimizer-coverage", Severity.WARNING,
            f"{len(uncovered)} of {len(trainable)} trainable parameter tensors ({numel:,} values) are in no "
            f"optimizer" + (" although backward gives them gradients" if receive_grad else "")
            + f", so they are never updated: {summarize_names(modules)}.",
            "Pass these parameters to an optimizer (e.g. `self.parameters()`, or add a param group), or "
            "freeze them with `requires_grad_(False)` if they are meant to stay fixed.",
            where=modules[0], at_step=False, key="uncovered",
            data={"modules": modules, "parameters": uncovered[:50], "values": int(numel),
                  "trainable_tensors": len(trainable), "receive_grad": receive_grad},
        )

    def _report_gradient_free(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", named: list,
                              uncovered: list[str]) -> None:
        """Info: tensors outside every optimizer that backward never reached (an averaged copy, a teacher)."""
        trainable = [n for n, p in named if p.requires_grad]
        modules = flow.uncovered_modules(uncovered, trainable)
        self.detail(trainer, "optimizer-coverage", f"{self._coverage_detail}; {len(uncovered)} of the left-out "
                                                   f"tensors never received a gradient")
        kinds = {type(m).__name__ for n, m in pl_module.named_modules() if n in set(modules)}
        self.report(
            trainer, "optimizer-coverage", Severity.INFO,
            f"{len(uncovered)} trainable parameter tensors are in no optimizer and never received a gradient, so "
            f"they are kept outside training (as an EMA/SWA copy or a momentum teacher is): "
            f"{summarize_names(modules)}" + (" (AveragedModel)." if "AveragedModel" in kinds else "."),
            "Nothing to do if they are updated by hand; `requires_grad_(False)` on them says so explicitly.",
            where=modules[0], at_step=False, key="uncovered-no-grad",
            data={"modules": modules, "parameters": uncovered[:50]},
        )

    def _recheck_coverage(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Parameters made trainable after fit start (``requires_grad_(True)`` in an epoch hook) that no optimizer
        holds: the optimizer was built while they were frozen, so their gradients are computed and never applied.

        One pass over the parameters and param groups per epoch: the cost of the fit-start check, once an epoch.
        Only tensors not already reported are reported, once each.
        """
        optimizers = list(trainer.optimizers)
        reported = getattr(self, "_coverage_reported", None)
        if not optimizers or reported is None:
            return  # skipped at fit start (no optimizer), or the fit-start check did not run
        held = [p for opt in optimizers for group in opt.param_groups for p in group["params"]]
        named = list(pl_module.named_parameters())
        fresh = [n for n in flow.optimizer_coverage(named, held).uncovered if n not in reported]
        if not fresh:
            return
        reported.update(fresh)
        trainable = [n for n, p in named if p.requires_grad]
        modules = flow.uncovered_modules(fresh, trainable)
        by_name = dict(named)
        numel = sum(by_name[n].numel() for n in fresh)
        # Reading `.grad` (never writing it) says whether backward already reaches them.
        with_grad = sum(1 for n in fresh if by_name[n].grad is not None)
        self.report(
            trainer, "optimizer-coverage", Severity.WARNING,
            f"{len(fresh)} parameter tensors ({numel:,} values) became trainable after the optimizer was built "
            f"(by epoch {trainer.current_epoch}) and are in no optimizer, so they are never updated: "
            f"{summarize_names(modules)}"
            + (f"; {with_grad} of them already receive gradients." if with_grad else "."),
            "Put these parameters in the optimizer from the start (frozen ones simply get no gradient), e.g. "
            "`AdamW(self.parameters())` or a low-lr param group for the backbone, or add a param group when you "
            "unfreeze (`optimizer.add_param_group(...)`, as Lightning's `BaseFinetuning.unfreeze_and_add_param_group` "
            "does).",
            where=modules[0], key="uncovered-later",
            data={"modules": modules, "parameters": fresh[:50], "values": int(numel), "with_grad": with_grad,
                  "epoch": trainer.current_epoch},
        )

"""``optimizer-coverage`` glue: does every trainable parameter reach an optimizer, and only this model's?

Mixed into :class:`~lightning_sanity.callbacks.model_checks.ModelChecks`, which calls :meth:`_check_coverage` at
``on_train_start`` and :meth:`_recheck_coverage` at every training epoch's end (parameters unfrozen after the
optimizer was built, as in gradual unfreezing); the comparison itself is
:func:`lightning_sanity.checks.flow.optimizer_coverage`.
"""

from __future__ import annotations

import lightning.pytorch as pl

from lightning_sanity.checks import flow
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
        self.detail(trainer, check, f"{cov.trainable} trainable tensors, {len(optimizers)} optimizer(s), "
                                    f"{len(cov.uncovered)} left out, {cov.foreign} foreign")
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
        if cov.uncovered and not (cov.foreign and len(cov.uncovered) == cov.trainable):
            # (When the optimizer holds none of the model, the error above already says everything.)
            trainable = [n for n, p in named if p.requires_grad]
            modules = flow.uncovered_modules(cov.uncovered, trainable)
            numel = sum(p.numel() for n, p in named if n in set(cov.uncovered))
            self.report(
                trainer, check, Severity.WARNING,
                f"{len(cov.uncovered)} of {cov.trainable} trainable parameter tensors ({numel:,} values) are in no "
                f"optimizer and will never be updated: {summarize_names(modules)}.",
                "Pass these parameters to an optimizer (e.g. `self.parameters()`, or add a param group), or "
                "freeze them with `requires_grad_(False)` if they are meant to stay fixed.",
                where=modules[0], at_step=False, key="uncovered",
                data={"modules": modules, "parameters": cov.uncovered[:50], "values": int(numel),
                      "trainable_tensors": cov.trainable},
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

r"""
Sanity summary
^^^^^^^^^^^^^^

Render the findings of every check of the suite once, at the end of fit or at the crash.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable
from typing import Any, Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_warn
from typing_extensions import override

from lightning_sanity import cost, tensorboard
from lightning_sanity._compat import gather_objects
from lightning_sanity.callbacks._hub import Hub
from lightning_sanity.callbacks.base import SanityCallback, skip_unused_batch_hooks
from lightning_sanity.checks.causes import link_consequences, link_to_constant_output
from lightning_sanity.findings import collector_for, release_collector, validate_check_names
from lightning_sanity.report import build_report, print_report, remember_report, render_markdown, write_report

log = logging.getLogger(__name__)


class SanitySummary(Callback):
    r"""Write the sanity summary at the end of fit, also when fit ends by an exception or Ctrl+C.

    On global rank 0 it writes ``<trainer.log_dir>/sanity/summary.json`` and ``summary.md``, prints the table to
    the terminal, and puts the markdown on TensorBoard's text dashboard (tag ``sanity/summary``) when a
    TensorBoard logger is attached. Under DDP the findings of every rank are gathered first (on a normal end).

    Put it after the check callbacks; :func:`lightning_sanity.default_callbacks` does.

    Args:
        print_summary: print the summary table to the terminal.
        ignore: check names to silence. Their findings stay in the report, as ``info`` with
            ``data["silenced"]`` set to the original severity, and never fail the run.
        periodic_budget: the share of the training time that the suite's periodic work (fixed-batch snapshots,
            images, histograms, activation statistics, leakage looks) may take, measured as it runs; each
            judgement still takes the few looks it needs; None lifts the budget. The summary states the suite's
            own cost.

    Raises:
        ValueError: ``ignore`` holds a name that is not one of the contract's check names, or
            ``periodic_budget`` is not a number in (0, 1].

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity import SanitySummary
        >>> trainer = Trainer(callbacks=[SanitySummary(ignore=["lr-schedule"])], logger=False)
    """

    def __init__(self, print_summary: bool = True, ignore: Iterable[str] = (),
                 periodic_budget: Optional[float] = 0.02) -> None:
        if not isinstance(print_summary, bool):
            raise ValueError(f"`print_summary` must be True or False, got {print_summary!r}.")
        if periodic_budget is not None and (isinstance(periodic_budget, bool) or not isinstance(
                periodic_budget, (int, float)) or not 0 < periodic_budget <= 1):
            raise ValueError(f"`periodic_budget` must be a share of the training time in (0, 1], e.g. 0.02 for 2 %, "
                             f"or None for no budget, got {periodic_budget!r}.")
        self.periodic_budget = periodic_budget
        self.print_summary = print_summary
        self.ignore = validate_check_names(ignore, "ignore")
        #: check names switched off through ``default_callbacks(disable=...)``, shown as skipped.
        self.switched_off: tuple[str, ...] = ()
        self.last_report: Optional[dict[str, Any]] = None
        self._log_dir: Optional[str] = None
        self._done = True

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage != "fit":
            return
        # `trainer.log_dir` is a collective under DDP: read it here, where every rank is, not at a crash.
        self._log_dir = trainer.log_dir
        cost.set_budget(self.periodic_budget)
        self._done = False
        collector_for(trainer).set_ignore(self.ignore)

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        tensorboard.write_layout(trainer)
        self._remove_hub()
        try:  # last of the suite: every check's own fit-start work is done, its hooks are as training needs them
            self._hub = Hub.install(trainer.callbacks, lambda cb: isinstance(cb, SanityCallback))
        except Exception as err:  # only a saving: Lightning's own dispatch works without it
            log.warning("lightning_sanity: could not fuse the suite's batch hooks: %r", err)
            self._remove_hub()

    def _remove_hub(self) -> None:
        hub, self._hub = getattr(self, "_hub", None), None
        if hub is not None:
            hub.remove()

    @override
    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self._remove_hub()
            self._finish(trainer, pl_module, ended=None, gather=True)

    @override
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self._remove_hub()
        ended = "Ctrl+C (KeyboardInterrupt)" if isinstance(exception, KeyboardInterrupt) else repr(exception)
        # No collective here: the other ranks may not be in this hook.
        self._finish(trainer, pl_module, ended=ended, gather=False)

    def _finish(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", ended: Optional[str], gather: bool) -> None:
        if self._done:
            return
        self._done = True
        started = time.perf_counter()
        try:
            collector = collector_for(trainer)
            for check in self.switched_off:
                collector.skip(check, "switched off by the user")
            for callback in trainer.callbacks:
                if isinstance(callback, SanityCallback):
                    collector.enable(*callback.active_checks)
                    for check in callback.disabled:
                        collector.skip(check, "switched off by the user")
                    try:
                        callback.conclude(trainer, pl_module)
                    except Exception as err:  # a check must never lose the user's run
                        log.warning("lightning_sanity: %s could not conclude: %r", type(callback).__name__, err)
            for callback in trainer.callbacks:  # judgements that read other checks' conclusions
                if isinstance(callback, SanityCallback):
                    try:
                        callback.conclude_after(trainer, pl_module)
                    except Exception as err:
                        log.warning("lightning_sanity: %s could not conclude: %r", type(callback).__name__, err)
            if gather:
                for other in gather_objects(collector)[1:]:
                    collector.merge(other)
            if not trainer.is_global_zero:
                return
            link_to_constant_output(collector.findings)
            link_consequences(collector.findings)
            self.last_report = report = build_report(collector, cost=_cost(trainer, started))
            self._publish(trainer, report, ended)
        except Exception as err:  # nothing the suite does may lose the user's run
            rank_zero_warn(f"lightning_sanity could not write its summary: {err!r}")
        finally:
            release_collector(trainer)
            cost.forget(trainer)

    def _publish(self, trainer: "pl.Trainer", report: dict[str, Any], ended: Optional[str]) -> None:
        if self.print_summary:
            print_report(report, ended)
        try:
            folder = write_report(report, self._log_dir or trainer.default_root_dir, ended)
            remember_report(trainer, folder)
            if self.print_summary:
                print(f"Sanity summary written to {folder.resolve()}", file=sys.stdout)
        except OSError as err:
            rank_zero_warn(f"lightning_sanity could not write the summary to {self._log_dir!r}: {err}. Training results are unaffected.")
        markdown = render_markdown(report, ended)
        for writer in tensorboard.writers(trainer):
            writer.add_text(tensorboard.SUMMARY_TAG, markdown, global_step=trainer.global_step)
            writer.flush()


def _cost(trainer: "pl.Trainer", finishing_since: float) -> Optional[dict[str, float]]:
    now = time.perf_counter()  # one reading for both: a pause between two would land in one of them only
    fit = cost.fit_seconds(trainer, now)
    if not fit:
        return None
    # The clock adds the hook this runs in (teardown: every check's conclusion, the last charts) only once it
    # returns: count what it took so far, or the end-of-fit work would be missing from the suite's share.
    suite = cost.suite_seconds(trainer) + (now - finishing_since)
    return {"suite_seconds": round(suite, 4), "fit_seconds": round(fit, 4), "share": round(suite / fit, 4),
            "periodic_seconds": round(cost.periodic_seconds(trainer), 4)}


skip_unused_batch_hooks(SanitySummary)
cost.time_hooks(SanitySummary)

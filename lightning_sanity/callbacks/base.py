"""The base class every check callback of the suite derives from."""

from __future__ import annotations

from typing import Any, ClassVar, Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lightning_sanity._compat import current_batch_idx
from lightning_sanity.findings import Finding, FindingCollector, Severity, collector_for


class SanityCallback(Callback):
    """A Lightning callback that owns some of the contract's checks and reports findings for them.

    Subclasses list the check names they own in ``checks`` and call :meth:`report`; the summary callback
    calls :meth:`conclude` on each of them before it renders, on a normal end and at a crash alike.
    """

    checks: ClassVar[tuple[str, ...]] = ()
    #: checks of this callback switched off by the user: not computed, shown as skipped.
    disabled: frozenset[str] = frozenset()

    def disable(self, *checks: str) -> "SanityCallback":
        """Switch off some of this callback's checks; returns the callback."""
        unknown = [c for c in checks if c not in self.checks]
        if unknown:
            raise ValueError(f"`disable` got {unknown}, which {type(self).__name__} does not run; it runs: {', '.join(self.checks)}.")
        self.disabled = self.disabled | frozenset(checks)
        return self

    def is_enabled(self, check: str) -> bool:
        return check not in self.disabled

    @property
    def active_checks(self) -> tuple[str, ...]:
        return tuple(c for c in self.checks if c not in self.disabled)

    def collector(self, trainer: "pl.Trainer") -> FindingCollector:
        return collector_for(trainer)

    def report(
        self,
        trainer: "pl.Trainer",
        check: str,
        severity: Severity | str,
        message: str,
        advice: str = "",
        *,
        where: Optional[str] = None,
        data: Optional[dict[str, Any]] = None,
        at_step: bool = True,
        batch_idx: Optional[int] = None,
        global_step: Optional[int] = None,
        replay: Optional[str] = None,
        key: Optional[str] = None,
    ) -> Finding:
        """Report a finding; ``at_step`` stamps it with the current epoch, batch, global step and seed.

        ``batch_idx`` and ``global_step`` default to the Trainer's current ones; pass them where the hook runs
        after the step's counters moved (``on_train_batch_end`` sees the global step already increased).
        """
        collector = self.collector(trainer)
        if check in self.disabled:
            return Finding(check, Severity(severity), message)
        finding = Finding(check, Severity(severity), message, advice, where=where, replay=replay,
                          data=dict(data or {}), key=key)
        if at_step:
            finding.epoch = trainer.current_epoch
            finding.batch_idx = batch_idx if batch_idx is not None else current_batch_idx(trainer)
            finding.global_step = global_step if global_step is not None else trainer.global_step
            finding.seed = collector.seed
        kept = collector.add(finding)
        if kept is finding and finding.severity is Severity.ERROR:
            # The one line the suite prints during training; everything else waits for the summary.
            rank_zero_info(f"lightning_sanity: [{check}] {message}")
        return kept

    def skip(self, trainer: "pl.Trainer", check: str, reason: str) -> None:
        """Mark one of this callback's checks as skipped for this run, with the reason."""
        self.collector(trainer).skip(check, reason)

    def detail(self, trainer: "pl.Trainer", check: str, text: str) -> None:
        """Set the key figures shown beside ``check`` in the summary table."""
        self.collector(trainer).detail(check, text)

    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Judge whatever needs the whole run; called once before the summary is written."""

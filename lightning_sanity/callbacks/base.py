"""The base class every check callback of the suite derives from."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar, Optional

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.utilities.rank_zero import rank_zero_info

from lightning_sanity._compat import current_batch_idx
from lightning_sanity.cost import time_hooks
from lightning_sanity.findings import Finding, FindingCollector, Severity, collector_for


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A figure of a check that users may tune with ``thresholds=``: its default, meaning and valid range.

    Example::

        >>> Threshold(1e3, "a step's gradient norm over its running median").validate("spike", 1e4)
        10000.0
    """

    default: float
    meaning: str
    minimum: float = 0.0  # exclusive: every threshold of the suite is a positive figure
    maximum: float = math.inf  # inclusive

    def validate(self, name: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"threshold `{name}` must be a finite number, got {value!r}.")
        if not self.minimum < value <= self.maximum:
            raise ValueError(f"threshold `{name}` must be in ({self.minimum:g}, {self.maximum:g}], got {value!r}.")
        return float(value)


#: Hooks Lightning calls on every batch. It skips a hook attribute that is not callable, so a check that does not
#: use one sets it to None (see ``__init_subclass__``) instead of paying a dispatch for a no-op on every step.
_BATCH_HOOKS = (
    "on_train_batch_start", "on_train_batch_end", "on_before_backward", "on_after_backward",
    "on_before_optimizer_step", "on_before_zero_grad", "on_validation_batch_start", "on_validation_batch_end",
    "on_test_batch_start", "on_test_batch_end", "on_predict_batch_start", "on_predict_batch_end",
)


def skip_unused_batch_hooks(cls: type) -> None:
    """Set the per-batch hooks that ``cls`` inherits unchanged from ``Callback`` to None (Lightning skips them)."""
    for hook in _BATCH_HOOKS:
        if getattr(cls, hook, None) is getattr(Callback, hook):
            setattr(cls, hook, None)


def check_int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    """Raise a ValueError naming the argument ``name`` unless ``value`` is an integer >= ``minimum`` (or None, when
    ``optional``)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or None" if optional else "")
        raise ValueError(f"`{name}` must be {allowed}, got {value!r}.")


class SanityCallback(Callback):
    """A Lightning callback that owns some of the contract's checks and reports findings for them.

    Subclasses list the check names they own in ``checks`` and call :meth:`report`; the summary callback
    calls :meth:`conclude` on each of them before it renders, on a normal end and at a crash alike.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        skip_unused_batch_hooks(cls)
        time_hooks(cls)  # the summary reports the suite's own share of the fit time

    checks: ClassVar[tuple[str, ...]] = ()
    #: ``{check: {name: Threshold}}``: the figures of this callback's checks that users may tune.
    threshold_specs: ClassVar[Mapping[str, Mapping[str, Threshold]]] = {}
    #: checks of this callback switched off by the user: not computed, shown as skipped.
    disabled: frozenset[str] = frozenset()
    #: thresholds set by the user, ``{(check, name): value}``; the rest keep their defaults.
    _thresholds: Mapping[tuple[str, str], float] = {}

    def set_thresholds(self, thresholds: Mapping[str, Mapping[str, float]]) -> "SanityCallback":
        """Tune this callback's checks: ``{check name: {threshold name: value}}``; returns the callback.

        Raises:
            ValueError: a check this callback does not run, a threshold its check does not have, or a value out
                of range; the message lists the valid ones.

        Example::

            >>> from lightning_sanity import NormMonitor
            >>> monitor = NormMonitor().set_thresholds({"exploding-gradient": {"spike": 1e4}})
            >>> monitor.threshold("exploding-gradient", "spike")
            10000.0
        """
        if not isinstance(thresholds, Mapping):
            raise ValueError(f"`thresholds` must be a dict {{check name: {{threshold name: value}}}}, got {thresholds!r}.")
        chosen = dict(self._thresholds)
        for check, values in thresholds.items():
            specs = self.threshold_specs.get(check)
            if specs is None:
                tunable = [c for c in self.checks if self.threshold_specs.get(c)]
                raise ValueError(f"`thresholds` got check {check!r}, which {type(self).__name__} has no thresholds "
                                 f"for; it has thresholds for: {', '.join(tunable) or 'none'}.")
            if not isinstance(values, Mapping):
                raise ValueError(f"`thresholds[{check!r}]` must be a dict {{threshold name: value}}, got {values!r}.")
            for name, value in values.items():
                if name not in specs:
                    raise ValueError(f"`thresholds[{check!r}]` got unknown threshold {name!r}; "
                                     f"{check} has: {', '.join(specs)}.")
                chosen[(check, name)] = specs[name].validate(f"{check}.{name}", value)
        self._thresholds = chosen
        return self

    def threshold(self, check: str, name: str) -> float:
        """The value in force of one of this callback's thresholds (the user's, else the default)."""
        value = self._thresholds.get((check, name))
        return self.threshold_specs[check][name].default if value is None else value

    def disable(self, *checks: str) -> "SanityCallback":
        """Switch off some of this callback's checks; returns the callback."""
        unknown = [c for c in checks if c not in self.checks]
        if unknown:
            raise ValueError(f"`disable` got {unknown}, which {type(self).__name__} does not run; it runs: {', '.join(self.checks)}.")
        self.disabled = self.disabled | frozenset(checks)
        return self

    def retire(self, *hooks: str) -> None:
        """Let Lightning skip these per-batch hooks for the rest of the fit: this callback is done with them.

        An instance attribute set to None shadows the method, and Lightning skips hooks that are not callable, so a
        check that finished its work early costs no dispatch on the steps after. :meth:`revive` undoes it.
        """
        hub = self.__dict__.get("_hub")  # while training, the suite's batch hooks may be fused (callbacks/_hub.py)
        for hook in hooks:
            if hub is None or not hub.drop(self, hook):
                setattr(self, hook, None)

    def revive(self) -> None:
        """Undo :meth:`retire` (at the start of a fit)."""
        for hook in _BATCH_HOOKS:
            self.__dict__.pop(hook, None)

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

    def conclude_after(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Judge what needs facts other checks leave when they conclude; called once every :meth:`conclude` ran."""

"""Findings, their severities, the contract's check names, and the one collector per Trainer.

Every check of the suite reports into the :class:`FindingCollector` of its Trainer; the summary callback
renders that collector once, at the end of fit or at the crash.

Example::

    >>> collector = FindingCollector(seed=0)
    >>> collector.enable("initial-loss")
    >>> _ = collector.add(Finding("initial-loss", Severity.WARNING, "Loss at init is 9.1, expected about 2.3."))
    >>> _ = collector.add(Finding("initial-loss", Severity.WARNING, "Loss at init is 9.1, expected about 2.3."))
    >>> [(f.check, f.count) for f in collector.findings]
    [('initial-loss', 2)]
    >>> collector.check_status("initial-loss")
    'warn'
"""

from __future__ import annotations

import dataclasses
import os
import weakref
from collections.abc import Iterable
from enum import Enum
from typing import Any, Optional

#: The contract's check names, in the order the summary lists them.
CHECKS: tuple[str, ...] = (
    "initial-loss",
    "loss-input",
    "optimizer-coverage",
    "input-scale",
    "label-distribution",
    "train-mode",
    "constant-output",
    "batch-mixing",
    "dead-gradient",
    "vanishing-gradient",
    "exploding-gradient",
    "weight-growth",
    "update-ratio",
    "dead-activations",
    "non-finite",
    "batchnorm-variance",
    "loss-trend",
    "prediction-jitter",
    "lr-schedule",
    "causal-leakage",
    "target-leakage",
    "split-overlap",
    "val-divergence",
)


class Severity(str, Enum):
    """How bad a finding is. ``error`` fails the report, ``warning`` warns, ``info`` only informs."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ("info", "warning", "error").index(self.value)


def validate_check_names(names: Iterable[str], argument: str) -> tuple[str, ...]:
    """Return ``names`` as a tuple, or raise ``ValueError`` naming ``argument`` and the valid names."""
    if isinstance(names, str):
        names = (names,)
    names = tuple(names)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"`{argument}` got unknown check name(s) {unknown}; valid names are: {', '.join(CHECKS)}.")
    return names


@dataclasses.dataclass
class Finding:
    """One thing a check noticed, in the shape of the contract's ``findings`` entries.

    ``key`` tells repeated findings apart: findings with the same check, severity, ``where`` and ``key`` are
    merged into one with a ``count``. It defaults to the message.
    """

    check: str
    severity: Severity
    message: str
    advice: str = ""
    epoch: Optional[int] = None
    batch_idx: Optional[int] = None
    global_step: Optional[int] = None
    seed: Optional[int] = None
    where: Optional[str] = None
    replay: Optional[str] = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    key: Optional[str] = None
    count: int = 1

    def __post_init__(self) -> None:
        if self.check not in CHECKS:
            raise ValueError(f"Finding `check` got {self.check!r}; valid names are: {', '.join(CHECKS)}.")
        self.severity = Severity(self.severity)

    @property
    def identity(self) -> tuple:
        return (self.check, self.severity, self.where, self.key if self.key is not None else self.message)

    def to_dict(self) -> dict[str, Any]:
        """The contract's JSON form; ``count`` goes into ``data`` when the finding repeated."""
        data = dict(self.data)
        if self.count > 1:
            data["count"] = self.count
        return {
            "check": self.check,
            "severity": self.severity.value,
            "message": self.message,
            "advice": self.advice,
            "epoch": self.epoch,
            "batch_idx": self.batch_idx,
            "global_step": self.global_step,
            "seed": self.seed,
            "where": self.where,
            "replay": self.replay,
            "data": data,
        }


def global_seed() -> Optional[int]:
    """The seed set by ``lightning.seed_everything`` (``PL_GLOBAL_SEED``), or None."""
    value = os.environ.get("PL_GLOBAL_SEED")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class FindingCollector:
    """Gathers the findings of every check attached to one Trainer.

    Args:
        seed: the global seed stamped on step findings.
        ignore: check names whose findings are kept but silenced (shown as ``info`` with
            ``data["silenced"]`` holding the original severity).
    """

    def __init__(self, seed: Optional[int] = None, ignore: Iterable[str] = ()) -> None:
        self.seed = seed
        self.ignore: set[str] = set()
        self._findings: dict[tuple, Finding] = {}
        self.enabled: set[str] = set()
        self.skipped: dict[str, str] = {}
        self.details: dict[str, str] = {}
        #: figures one check hands to another (e.g. ``"baseline_loss"`` from initial-loss to loss-trend).
        self.facts: dict[str, Any] = {}
        self.set_ignore(ignore)

    def enable(self, *checks: str) -> None:
        """Mark checks as running, so the summary shows them as pass unless they report."""
        self.enabled.update(validate_check_names(checks, "checks"))

    def set_ignore(self, checks: Iterable[str]) -> None:
        """Silence these checks: their findings stay in the report, as ``info`` marked ``silenced``."""
        self.ignore |= set(validate_check_names(checks, "ignore"))
        findings, self._findings = list(self._findings.values()), {}
        for finding in findings:
            self.add(finding)

    def _silence(self, finding: Finding) -> None:
        if finding.check in self.ignore and finding.severity is not Severity.INFO:
            finding.data = {**finding.data, "silenced": finding.severity.value}
            finding.severity = Severity.INFO

    def skip(self, check: str, reason: str) -> None:
        """Mark a check as skipped for this run, with the reason shown in the summary."""
        self.skipped.setdefault(check, reason)

    def detail(self, check: str, text: str) -> None:
        """Set the key figures the summary shows beside a check (last one wins)."""
        self.details[check] = text

    def add(self, finding: Finding) -> Finding:
        """Add a finding, merging it into an identical earlier one; returns the finding kept."""
        self._silence(finding)
        kept = self._findings.get(finding.identity)
        if kept is None:
            if finding.seed is None and finding.global_step is not None:
                finding.seed = self.seed
            self._findings[finding.identity] = finding
            return finding
        kept.count += finding.count
        if finding.global_step is not None:
            kept.data["last_global_step"] = finding.global_step
        return kept

    def merge(self, other: FindingCollector) -> None:
        """Take in another rank's findings that this collector has not seen."""
        for identity, finding in other._findings.items():
            self._findings.setdefault(identity, finding)
        for check, reason in other.skipped.items():
            self.skipped.setdefault(check, reason)
        for check, text in other.details.items():
            self.details.setdefault(check, text)
        for name, value in other.facts.items():
            self.facts.setdefault(name, value)
        self.enabled |= other.enabled

    @property
    def findings(self) -> list[Finding]:
        """Findings, worst first, then in the order the checks are listed."""
        order = {name: i for i, name in enumerate(CHECKS)}
        return sorted(self._findings.values(), key=lambda f: (-f.severity.rank, order[f.check]))

    def check_status(self, check: str) -> str:
        """``fail``, ``warn``, ``pass`` or ``skipped`` for one check, as the summary shows it."""
        worst = max((f.severity.rank for f in self._findings.values() if f.check == check), default=-1)
        if worst == Severity.ERROR.rank:
            return "fail"
        if worst == Severity.WARNING.rank:
            return "warn"
        if check in self.skipped or (check not in self.enabled and worst < 0):
            return "skipped"
        return "pass"

    def check_detail(self, check: str) -> str:
        if check in self.skipped and self.check_status(check) == "skipped":
            return self.skipped[check]
        if check not in self.enabled and check not in self.skipped and check not in self.details:
            return "not enabled"
        return self.details.get(check, "")

    @property
    def status(self) -> str:
        worst = max((f.severity.rank for f in self._findings.values()), default=0)
        return ("pass", "warn", "fail")[worst]


_COLLECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def collector_for(trainer: Any) -> FindingCollector:
    """The collector shared by every check attached to ``trainer``, created on first use."""
    collector = _COLLECTORS.get(trainer)
    if collector is None:
        collector = _COLLECTORS[trainer] = FindingCollector(seed=global_seed())
    return collector


def release_collector(trainer: Any) -> None:
    """Forget ``trainer``'s collector once its report is written, so a second fit starts clean."""
    _COLLECTORS.pop(trainer, None)

"""The suite's own cost: the time spent inside its code, measured as it runs, against the fit's wall time.

The work the suite does on some steps only (fixed-batch snapshots with their images and histograms, activation
statistics, leakage looks) runs under one time budget: :func:`periodic_allowed` lets it run while the periodic
time so far stays within a share of the training time so far (2 % by default, ``default_callbacks(
periodic_budget=...)``), and :func:`periodic` charges it. A judgement that needs a few looks takes them anyway
(``required``) and says in its detail when the budget held it to fewer.

Every Lightning hook of the suite's callbacks is timed (the outermost call only, so a hook that calls another is
counted once), and so are the module hooks it places inside the model's forward on some steps. The clock starts at
the first of the suite's hooks of a fit (``setup``) and the summary reads it at the end, so a user sees the price
of every run in the summary.

Example::

    >>> class Check:
    ...     @timed_hook
    ...     def on_train_start(self, trainer, pl_module):
    ...         sum(range(10_000))
    >>> trainer = object()
    >>> Check().on_train_start(trainer, None)
    >>> suite_seconds(trainer) > 0
    True
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any, Callable, Optional

from lightning.pytorch.callbacks import Callback

#: The callback methods Lightning calls: every ``on_*`` hook, ``setup`` and ``teardown``.
HOOKS = frozenset(name for name in vars(Callback) if name.startswith("on_") or name in ("setup", "teardown"))


class _Clock:
    """One clock per process, for the Trainer whose fit the suite is in (a new Trainer restarts it)."""

    trainer: Any = None
    started = 0.0
    seconds = 0.0
    depth = 0
    periodic = 0.0  # the part of ``seconds`` spent on periodic work
    in_periodic = False  # inside a ``periodic`` block (an inner one does not charge again)
    budget: Optional[float] = 0.02  # share of the training time periodic work may take (None: no budget)
    last: dict = {}  # the last duration of each kind of periodic work, its estimate for the next one


_clock = _Clock()


def timed_hook(fn: Callable) -> Callable:
    """Time a callback hook ``fn(self, trainer, ...)``; the first hook of a new Trainer restarts the clock.

    One wrapper frame, not :func:`timed` around another: it runs on every hook call of every step.
    """

    @functools.wraps(fn)
    def hook(self: Any, trainer: Any = None, *args: Any, **kwargs: Any) -> Any:
        clock = _clock
        if clock.depth:
            return fn(self, trainer, *args, **kwargs)
        start = time.perf_counter()
        if trainer is not clock.trainer:
            clock.trainer, clock.started, clock.seconds, clock.periodic, clock.last = trainer, start, 0.0, 0.0, {}
        clock.depth = 1
        try:
            return fn(self, trainer, *args, **kwargs)
        finally:
            clock.depth = 0
            clock.seconds += time.perf_counter() - start

    hook.__timed__ = True  # type: ignore[attr-defined]
    return hook


def timed(fn: Callable) -> Callable:
    """Time any code of the suite on the current clock (the outermost call only: nested suite code is inside it)."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        clock = _clock
        if clock.depth:
            return fn(*args, **kwargs)
        start = time.perf_counter()
        clock.depth = 1
        try:
            return fn(*args, **kwargs)
        finally:
            clock.depth = 0
            clock.seconds += time.perf_counter() - start

    return call


def time_hooks(cls: type) -> type:
    """Time every Lightning hook ``cls`` defines itself (inherited ones are timed where they are defined)."""
    for name, value in list(vars(cls).items()):
        if name in HOOKS and inspect.isfunction(value) and not getattr(value, "__timed__", False):
            setattr(cls, name, timed_hook(value))
    return cls


def set_budget(share: Optional[float]) -> None:
    """The share of the training time that periodic work may take (from ``SanitySummary(periodic_budget=)``)."""
    _clock.budget = share


def budget() -> Optional[float]:
    """The share of the training time that periodic work may take now (None: no budget)."""
    return _clock.budget


def periodic_allowed(trainer: Any, kind: str, taken: int, required: int = 0, prior: float = 0.0) -> bool:
    """May periodic work of ``kind`` run now? Yes for its first ``required`` looks; after that while the periodic
    time so far, plus what the last look of this kind took (``prior`` seconds before the first), stays within the
    budget's share of the training time (the fit's wall time less the periodic time)."""
    clock = _clock
    if taken < required or clock.budget is None:
        return True
    if trainer is not clock.trainer:
        return True  # no clock for this Trainer (the suite's summary is not in it): nothing to budget against
    training = time.perf_counter() - clock.started - clock.periodic
    return clock.periodic + clock.last.get(kind, prior) <= clock.budget * training


class periodic:
    """Charge the time of a block of periodic work of ``kind`` to the budget.

    A block inside another (a snapshot's charts) records its own duration as the estimate for its kind, and the
    outer block charges the time once.

    Example::

        >>> with periodic("snapshot"):
        ...     with periodic("charts"):
        ...         _ = sum(range(1000))
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __enter__(self) -> "periodic":
        self.start = time.perf_counter()
        self.outer = not _clock.in_periodic
        _clock.in_periodic = True
        return self

    def __exit__(self, *exc: Any) -> None:
        took = time.perf_counter() - self.start
        _clock.last[self.kind] = took
        if self.outer:
            _clock.in_periodic = False
            _clock.periodic += took


def planned_steps(trainer: Any) -> Any:
    """``trainer.estimated_stepping_batches``, its time left out of the suite's clock.

    Its first read before the fit loop starts loads the training dataloader (building the user's dataset), which
    Lightning would do a moment later anyway and then does not repeat: the time is the run's, not the suite's. A
    suite that paid for it in its own cost showed 40 % of a run whose dataset takes a second to build.
    """
    start = time.perf_counter()
    try:
        return trainer.estimated_stepping_batches
    finally:
        if _clock.depth:
            _clock.seconds -= time.perf_counter() - start


def suite_seconds(trainer: Any) -> float:
    """Seconds spent inside the suite's code during ``trainer``'s current fit (0 for another Trainer)."""
    return _clock.seconds if trainer is _clock.trainer else 0.0


def periodic_seconds(trainer: Any) -> float:
    """Seconds of periodic work during ``trainer``'s current fit."""
    return _clock.periodic if trainer is _clock.trainer else 0.0


def fit_seconds(trainer: Any, now: Optional[float] = None) -> Optional[float]:
    """Wall seconds since the suite's first hook of ``trainer``'s current fit (until ``now``, a
    ``time.perf_counter()`` reading, when given), or None for another Trainer."""
    if trainer is not _clock.trainer:
        return None
    return (time.perf_counter() if now is None else now) - _clock.started


def forget(trainer: Any) -> None:
    """End ``trainer``'s fit: its next fit starts a new clock (and the Trainer is not kept alive)."""
    if _clock.trainer is trainer:
        _clock.trainer = None

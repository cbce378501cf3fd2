"""The suite's own cost: the time spent inside its code, measured as it runs, against the fit's wall time.

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


_clock = _Clock()


def timed_hook(fn: Callable) -> Callable:
    """Time a callback hook ``fn(self, trainer, ...)``; the first hook of a new Trainer restarts the clock."""

    @functools.wraps(fn)
    def hook(self: Any, trainer: Any = None, *args: Any, **kwargs: Any) -> Any:
        clock = _clock
        if clock.depth:
            return fn(self, trainer, *args, **kwargs)
        start = time.perf_counter()
        if trainer is not clock.trainer:
            clock.trainer, clock.started, clock.seconds = trainer, start, 0.0
        clock.depth = 1
        try:
            return fn(self, trainer, *args, **kwargs)
        finally:
            clock.depth = 0
            clock.seconds += time.perf_counter() - start

    hook.__timed__ = True  # type: ignore[attr-defined]
    return hook


def timed(fn: Callable) -> Callable:
    """Time any other code of the suite (a module hook inside the forward pass), on the current clock."""

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


def suite_seconds(trainer: Any) -> float:
    """Seconds spent inside the suite's code during ``trainer``'s current fit (0 for another Trainer)."""
    return _clock.seconds if trainer is _clock.trainer else 0.0


def fit_seconds(trainer: Any) -> Optional[float]:
    """Wall seconds since the suite's first hook of ``trainer``'s current fit, or None for another Trainer."""
    return time.perf_counter() - _clock.started if trainer is _clock.trainer else None


def forget(trainer: Any) -> None:
    """End ``trainer``'s fit: its next fit starts a new clock (and the Trainer is not kept alive)."""
    if _clock.trainer is trainer:
        _clock.trainer = None

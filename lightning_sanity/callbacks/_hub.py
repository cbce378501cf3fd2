"""One Lightning dispatch per training-batch hook for the whole suite, instead of one per check.

Lightning calls each callback's hook through its own dispatch: an attribute lookup, a profiler context (a
generator-based context manager even when no profiler runs) and an f-string naming the callback, a few
microseconds per callback and hook. On a model with millisecond steps the suite's dozen per-step hooks paid more
for that dispatch than for some of their own work.

While training runs (from the summary's ``on_train_start`` to the end of training), a :class:`Hub` takes each
training-batch hook of a run of consecutive suite callbacks in ``trainer.callbacks`` and calls them, in the same
order, from the first of them: the others' hooks are hidden from Lightning (an instance attribute set to None,
which Lightning skips). Order relative to the user's callbacks is unchanged: a callback of the user between two
suite callbacks splits them into two runs. A check that retires a hook (:meth:`SanityCallback.retire`) leaves the
hub's list; :meth:`Hub.remove` restores every hook as it was (retired ones stay retired).

Example::

    >>> hub = Hub.install([])  # no suite callbacks: nothing to fuse
    >>> hub.remove()
"""

from __future__ import annotations

from time import perf_counter
from typing import Any, Callable, Optional

import torch

from lightning_sanity import cost
from lightning_sanity.callbacks._extra_forward import hidden_step_watches

_function_modes = torch._C._len_torch_function_stack

#: The hooks Lightning calls on every training batch (validation batches are fewer; they keep their dispatch).
HUB_HOOKS = ("on_train_batch_start", "on_before_backward", "on_after_backward", "on_before_optimizer_step",
             "on_before_zero_grad", "on_train_batch_end")
_MISSING = object()


class _Fused:
    """The hooks of one name of one run of callbacks, called in order from the run's first callback."""

    __slots__ = ("name", "leader", "calls", "bare", "owners", "__weakref__")

    def __init__(self, name: str, leader: Any, members: list[tuple[Any, Callable]]) -> None:
        self.name, self.leader = name, leader
        self.owners = [m for m, _ in members]
        self.calls = tuple(fn for _, fn in members)
        self.bare = tuple(map(_bare, self.calls))

    # Timed as a whole on the suite's clock (cost.py), calling each member's hook without its own timing wrapper
    # (``bare``): a dozen hook calls a step paid a frame and two clock reads each on millisecond steps. A hook
    # wrapped by anything else (a profiler's wrapper around one check, benchmarks/profile_suite.py) is called
    # as it is, and lands inside the measured time.
    def __call__(self, trainer: Any, pl_module: Any, *args: Any, **kwargs: Any) -> None:
        clock = cost._clock
        if clock.depth or trainer is not clock.trainer:  # nested, or a new fit: the members' wrappers time it
            for fn in self.calls:
                _call(fn, trainer, pl_module, args, kwargs)
            return
        start = perf_counter()
        clock.depth = 1
        try:
            for fn in self.bare:  # a tuple: a hook that retires itself meanwhile leaves the next call's list
                if _function_modes():  # as in _call, inlined: a frame less per member on every step
                    with hidden_step_watches():
                        fn(trainer, pl_module, *args, **kwargs)
                else:
                    fn(trainer, pl_module, *args, **kwargs)
        finally:
            clock.depth = 0
            clock.seconds += perf_counter() - start

    def drop(self, member: Any) -> None:
        keep = [(m, fn) for m, fn in zip(self.owners, self.calls) if m is not member]
        self.owners = [m for m, _ in keep]
        self.calls = tuple(fn for _, fn in keep)
        self.bare = tuple(map(_bare, self.calls))


def _call(fn: Callable, trainer: Any, pl_module: Any, args: tuple, kwargs: dict) -> None:
    # While a first-step watcher is on the torch function stack, the suite's own hooks run hidden from it: their
    # reads of the batch are not the user's step (a token scan is not the input's first use). One C call otherwise.
    if _function_modes():
        with hidden_step_watches():
            fn(trainer, pl_module, *args, **kwargs)
    else:
        fn(trainer, pl_module, *args, **kwargs)


def _bare(fn: Callable) -> Callable:
    """``fn`` without the suite's timing wrapper (``cost.timed_hook``) when it is exactly that wrapper, bound."""
    func, owner = getattr(fn, "__func__", None), getattr(fn, "__self__", None)
    inner = getattr(func, "__wrapped__", None)
    if owner is None or inner is None or not getattr(func, "__timed__", False) or getattr(inner, "__timed__", False):
        return fn  # not a bound timed hook, or a wrapper around one (it keeps its own work)
    return inner.__get__(owner)


class Hub:
    """The fused hooks of the suite's callbacks for one fit (see the module docstring)."""

    def __init__(self) -> None:
        self.fused: dict[tuple[int, str], _Fused] = {}  # (id(member), hook) -> the fused hook that calls it
        self.saved: list[tuple[Any, str, Any]] = []  # (callback, hook, its instance attribute before) to restore
        self.retired: set[tuple[int, str]] = set()
        self.led: set[tuple[int, str]] = set()  # (id(leader), hook): the leader's attribute is the fused hook

    @classmethod
    def install(cls, callbacks: list[Any], is_member: Optional[Callable[[Any], bool]] = None) -> "Hub":
        """Fuse the training-batch hooks of each run of consecutive members of ``callbacks`` (suite callbacks)."""
        hub = cls()
        is_member = is_member or (lambda cb: hasattr(cb, "retire"))
        run: list[Any] = []
        for cb in [*callbacks, None]:
            if cb is not None and is_member(cb):
                run.append(cb)
                continue
            if len(run) > 1:
                hub._fuse(run)
            run = []
        return hub

    def _fuse(self, run: list[Any]) -> None:
        leader = run[0]
        for name in HUB_HOOKS:
            members = [(cb, getattr(cb, name, None)) for cb in run]
            members = [(cb, fn) for cb, fn in members if callable(fn)]
            if len(members) < 2:
                continue  # one callback or none: Lightning's own dispatch costs the same
            fused = _Fused(name, leader, members)
            for cb in {id(cb): cb for cb in [leader, *fused.owners]}.values():
                self.saved.append((cb, name, cb.__dict__.get(name, _MISSING)))
                setattr(cb, name, fused if cb is leader else None)
                cb.__dict__["_hub"] = self
            for cb in fused.owners:
                self.fused[(id(cb), name)] = fused
            self.led.add((id(leader), name))

    def drop(self, member: Any, name: str) -> bool:
        """``member`` retires hook ``name``: take it out of the fused call. False when the hub does not hold it."""
        fused = self.fused.pop((id(member), name), None)
        if fused is None and (id(member), name) not in self.led:
            return False
        if fused is not None:
            fused.drop(member)
        self.retired.add((id(member), name))
        return True

    def remove(self) -> None:
        """Give every hook back to Lightning's own dispatch, as it was; hooks retired meanwhile stay retired."""
        for cb, name, before in reversed(self.saved):
            cb.__dict__.pop("_hub", None)
            if (id(cb), name) in self.retired:
                setattr(cb, name, None)
            elif before is _MISSING:
                cb.__dict__.pop(name, None)
            else:
                cb.__dict__[name] = before
        self.saved, self.fused, self.retired, self.led = [], {}, set(), set()

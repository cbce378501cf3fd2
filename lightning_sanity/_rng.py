"""Run suite code without a trace on the global random number generators, even when that code fails.

Lightning's ``isolate_rng`` (2.6) puts the states back only when its block ends normally: a probe that raised
half-way through a forward (a model the probe cannot call as it guessed) left its draws consumed, and the user's
next dropout mask changed. This one restores them in every case.

Example::

    >>> import torch
    >>> before = torch.get_rng_state()
    >>> try:
    ...     with isolate_rng():
    ...         _ = torch.rand(3)
    ...         raise RuntimeError("a probe failed")
    ... except RuntimeError:
    ...     pass
    >>> torch.equal(before, torch.get_rng_state())
    True
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch


def _states(include_cuda: bool) -> dict[str, Any]:
    cuda = torch.cuda.get_rng_state_all() if include_cuda and torch.cuda.is_initialized() else None
    return {"torch": torch.get_rng_state(), "cuda": cuda, "numpy": np.random.get_state(), "python": random.getstate()}


def _restore(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None:
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


@contextlib.contextmanager
def isolate_rng(include_cuda: bool = True) -> Iterator[None]:
    """Torch (CPU and, once initialised, CUDA), numpy and Python RNG states as they were, however the block ends."""
    states = _states(include_cuda)
    try:
        yield
    finally:
        _restore(states)

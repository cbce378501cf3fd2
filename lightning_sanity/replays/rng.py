"""The global RNG states at the start of a step: read cheaply, stored portably, set back for a replay.

:func:`capture_rng_states` runs on every training step (the bundle is only written when a check fires), so the
numpy and Python states are read through :class:`_StateReader`, which skips the full read while the generator
has not moved.
"""

from __future__ import annotations

import contextlib
import ctypes
import platform
import random
from collections.abc import Iterator, Mapping
from typing import Any, Optional

import numpy as np
import torch


class _StateReader:
    """A generator's state, reused while the bytes that hold it have not moved since the last full read.

    Most training steps draw nothing from numpy or Python's ``random``, yet a full read of either builds a 624-word
    state every time. Both are MT19937 generators whose whole state is 2,500 bytes at a fixed address: comparing
    them costs well under a microsecond. The shortcut checks itself against a full read once per generator and
    falls back to the full read on anything unexpected (another layout, another interpreter, an error).
    """

    _BYTES = 624 * 4 + 4  # uint32 key[624] and int pos (numpy) / int index and uint32 state[624] (Python)

    def __init__(self) -> None:
        self._generator: Any = None
        self._memory: Any = None  # a ctypes view of the generator's state, valid while self._generator lives
        self._raw: Optional[bytes] = None
        self._state: Any = None
        self._fast = True

    def get(self) -> Any:
        if not self._fast:
            return self._read()
        try:
            generator = self._current()
            if generator is not self._generator:
                self._generator, self._raw, self._state = generator, None, None
                address = self._address(generator)
                self._memory = None if address is None else (ctypes.c_char * self._BYTES).from_address(address)
            if self._memory is None:
                return self._read()
            raw = self._memory.raw
            if raw == self._raw and self._unchanged(generator):
                return self._state
            state = self._read()
            if self._raw is None and not self._matches(raw, state):
                self._fast = False  # not the layout this relies on
                return state
            self._raw, self._state = raw, state
            return state
        except Exception:
            self._fast = False
            return self._read()

    def _current(self) -> Any:
        """The object that owns the generator's state now."""
        raise NotImplementedError

    def _address(self, generator: Any) -> Optional[int]:
        """Where the 2,500 bytes of state start, or None where this generator has no such layout."""
        raise NotImplementedError

    def _read(self) -> Any:
        """The full state, as the library returns it."""
        raise NotImplementedError

    def _unchanged(self, generator: Any) -> bool:
        """What the bytes do not hold is as it was at the last full read."""
        raise NotImplementedError

    def _matches(self, raw: bytes, state: Any) -> bool:
        """``raw`` holds exactly ``state``'s words (checked once per generator)."""
        raise NotImplementedError


class _NumpyState(_StateReader):
    """``np.random.get_state()`` of numpy's legacy global generator (an MT19937 bit generator)."""

    def _current(self) -> Any:
        return np.random.mtrand._rand._bit_generator

    def _address(self, generator: Any) -> Optional[int]:
        return generator.ctypes.state_address if type(generator).__name__ == "MT19937" else None

    def _read(self) -> Any:
        return np.random.get_state()

    def _unchanged(self, generator: Any) -> bool:
        # A cached Gaussian (``has_gauss``) can be used up without moving the bytes: reuse only a state without one
        # (caching a new one takes a draw, which moves them).
        return not self._state[3]

    def _matches(self, raw: bytes, state: Any) -> bool:
        return (raw[:-4] == np.asarray(state[1], dtype=np.uint32).tobytes()
                and int.from_bytes(raw[-4:], "little", signed=True) == state[2])


class _PythonState(_StateReader):
    """``random.getstate()`` of Python's global ``random`` instance (CPython's ``_random.Random``)."""

    def _current(self) -> Any:
        return random._inst

    def _address(self, generator: Any) -> Optional[int]:
        import _random

        if platform.python_implementation() != "CPython" or not isinstance(generator, _random.Random):
            return None
        return id(generator) + object.__basicsize__  # after the object header: int index, uint32 state[624]

    def _read(self) -> Any:
        return random.getstate()

    def _unchanged(self, generator: Any) -> bool:
        # ``gauss_next`` lives outside the bytes: the same object as at the last read, or the state has moved.
        return generator.gauss_next is self._state[2]

    def _matches(self, raw: bytes, state: Any) -> bool:
        words = state[1]
        return (int.from_bytes(raw[:4], "little", signed=True) == words[-1]
                and raw[4:] == np.asarray(words[:-1], dtype=np.uint32).tobytes())


_NUMPY_STATE = _NumpyState()
_PYTHON_STATE = _PythonState()


def capture_rng_states() -> dict[str, Any]:
    """The global RNG states, cheaply and without consuming them (``get_state`` draws nothing).

    Raw objects as the libraries return them; :func:`write_bundle` turns them into plain containers.
    """
    cuda = None
    if torch.cuda.is_initialized():  # only once CUDA is in use (which implies it is available)
        cuda = torch.cuda.get_rng_state_all()
    return {"torch": torch.default_generator.get_state(), "cuda": cuda, "numpy": _NUMPY_STATE.get(),
            "python": _PYTHON_STATE.get()}


def seed_global(seed: int) -> None:
    """Seed torch's CPU generator, and CUDA's once CUDA is in use: what :func:`capture_rng_states` saves and
    :func:`isolate_rng` puts back. ``torch.manual_seed`` also queues a lazy seeding of every other backend (CUDA,
    XPU, MTIA), formatting a stack trace for each: about 1.3 ms a call on a CPU."""
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(seed)


def set_rng_states(states: Mapping[str, Any]) -> None:
    """Set the global RNGs from :func:`capture_rng_states`' raw states. numpy's and Python's generators are left
    alone where their reader hands back the very state given (their bytes have not moved since it was captured):
    numpy's ``set_state`` rebuilds 624 words, about 65 us, and :func:`isolate_rng` runs around every probe."""
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None:
        torch.cuda.set_rng_state_all(states["cuda"])
    if _NUMPY_STATE.get() is not states["numpy"]:
        np.random.set_state(states["numpy"])
    if _PYTHON_STATE.get() is not states["python"]:
        random.setstate(states["python"])


@contextlib.contextmanager
def isolate_rng(include_cuda: bool = False) -> Iterator[None]:
    """Run a block without a trace on the global RNGs (torch, CUDA once in use, numpy, Python), however it ends.
    ``include_cuda``: the CUDA states too when CUDA is not in use yet (a block that may start using it).

    Lightning's ``isolate_rng`` (2.6) puts the states back only when its block ends normally: a probe that raised
    half-way through a forward (a model the probe cannot call as it guessed) left its draws consumed, and the
    user's next dropout mask changed.

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
    states = capture_rng_states()
    if include_cuda and states["cuda"] is None and torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    try:
        yield
    finally:
        set_rng_states(states)


def _portable_rng(states: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"torch": states["torch"], "cuda": states.get("cuda")}
    name, keys, pos, has_gauss, gauss = states["numpy"][:5]
    out["numpy"] = {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                    "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
    version, internal, gauss_next = states["python"]
    out["python"] = {"version": int(version), "state": [int(v) for v in internal], "gauss_next": gauss_next}
    return out


def restore_rng_states(states: Mapping[str, Any]) -> None:
    """Set the global RNGs from a bundle's ``rng`` entry (portable form)."""
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        cuda = list(states["cuda"])[: torch.cuda.device_count()]
        for i, state in enumerate(cuda):
            torch.cuda.set_rng_state(state, i)
    n = states["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))

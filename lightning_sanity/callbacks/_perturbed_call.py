"""The leakage checks' one dependency test: re-run the observed model call with one of its tensors changed on one
side of a position, and see whether the outputs on the other side move.

:class:`~lightning_sanity.callbacks.leakage.LeakageChecks` asks it of the input after ``t`` (causal-leakage), of
the target from ``t`` on (a decoder fed the target unshifted), of a decoder input after ``t`` (a decoder without a
causal mask, :mod:`._decoder_input`) and of an input cut from the target up to ``t`` (labels read at an earlier
position, :mod:`._lagged_targets`). The unperturbed output is computed once per sequence length and shared by all of
them. Runs under the caller's ``no_grad``, eval mode and isolated RNG; draws only from the callback's generator.

Example::

    >>> import torch
    >>> from lightning_sanity.callbacks.leakage import LeakageChecks
    >>> from lightning_sanity.replays.rng import isolate_rng
    >>> model = torch.nn.Linear(3, 2)  # per position: the outputs never read other positions
    >>> x = torch.arange(60.0).reshape(4, 5, 3)
    >>> call = {"x": x, "args": (x,), "kwargs": {}, "fn": lambda a, k: model(*a, **k), "how": "model(x)"}
    >>> with torch.no_grad(), isolate_rng():
    ...     probe = PerturbedCall(LeakageChecks(), call)
    ...     probe.change(x, 2).moved, probe.change(x, 2, before=True).moved
    (False, False)
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import torch

from lightning_sanity.batch import map_tensors
from lightning_sanity.checks import flow
from lightning_sanity.checks import leakage as L


class Change(NamedTuple):
    """The largest change of the compared outputs, their scale, the first position that moved (-1: none), and
    whether the change is more than round-off."""

    change: float
    scale: float
    position: int
    moved: bool


class PerturbedCall:
    """One observed model call of the fixed batch (``call``, as kept by :func:`._model_call.keep_call`), re-run with
    one tensor changed; ``callback`` gives the output reader (``_output``) and the generator."""

    def __init__(self, callback: Any, call: dict[str, Any]) -> None:
        self.callback, self.call = callback, call
        self._bases: dict[tuple[int, int], Optional[tuple[torch.Tensor, bool]]] = {}

    def base(self, size: int, length: int) -> Optional[tuple[torch.Tensor, bool]]:
        """The unperturbed output as ``(B, length, units)`` (strided units, a copy) and whether it is half
        precision; None when the output has no dimension of ``length`` positions."""
        key = (size, length)
        if key not in self._bases:
            call = self.call
            out, _, half = self.callback._output(call, call["args"], call["kwargs"], size, length)
            # The copy frees the full output (a 32k-vocabulary one is as large as the model's activations).
            self._bases[key] = None if out is None else (
                flow.strided_units(out, L.COMPARED_UNITS).contiguous(), half)
        return self._bases[key]

    def change(self, value: torch.Tensor, t: int, axis: int = 1, before: bool = False,
               start_offset: int = 1) -> Optional[Change]:
        """Change ``value`` (a tensor of the call) after position ``t`` and compare the outputs up to ``t``; with
        ``before``, change it up to ``t`` and compare the outputs after ``t``. ``start_offset=0`` changes position
        ``t`` too. None when the outputs have no positions to compare."""
        size, length = int(value.shape[0]), int(value.shape[axis])
        found = self.base(size, length)
        if found is None:
            return None
        base, half = found
        generator = self.callback._generator
        if before:  # the mirror image: positions <= t of the reversed tensor are the last ones
            new = L.perturb_after(value.flip(axis), length - 2 - t, axis, generator, start_offset).flip(axis)
        else:
            new = L.perturb_after(value, t, axis, generator, start_offset)
        call = self.call
        args, kwargs = map_tensors((call["args"], call["kwargs"]), lambda v: new if v is value else v)
        out, _, _ = self.callback._output(call, args, kwargs, size, length)
        if out is None:
            return None
        out = flow.strided_units(out, L.COMPARED_UNITS)
        if before:
            change, scale, first = L.change_up_to(base.flip(1), out.flip(1), length - 2 - t)
            first = length - 1 - first if first >= 0 else -1
        else:
            change, scale, first = L.change_up_to(base, out[:, : t + 1], t)
        return Change(change, scale, first, L.depends(change, scale, half))

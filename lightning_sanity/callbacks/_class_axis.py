"""The loss inspector's ``loss-input`` finding for a class axis flattened into the rows of a classification loss
(glue and capture; the rule is :func:`lightning_sanity.checks.class_axis.interleaved_class_axis`).

:class:`ReshapeOrigins` is fed every torch call of the first step (after it ran) and remembers, for each tensor
made by a pure reshape (``view``, ``reshape``, ``flatten``, casts: the flat element order unchanged), the shape of
the tensor the chain of reshapes started from. A ``permute`` / ``transpose`` / ``movedim`` (or any other op)
starts a new chain, so ``logits.permute(0, 2, 3, 1).reshape(-1, C)`` remembers ``(B, H, W, C)``. Shapes only:
no value, no sync, first step only.

Example::

    >>> import torch
    >>> origins = ReshapeOrigins()
    >>> logits = torch.zeros(2, 3, 4, 4); flat = logits.reshape(-1, 3)
    >>> origins.after(torch.Tensor.reshape, (logits, -1, 3), flat)
    >>> origins.origin(flat)
    (2, 3, 4, 4)
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

import torch

from lightning_sanity.callbacks._step_watch import function_name
from lightning_sanity.checks import class_axis
from lightning_sanity.findings import Severity

#: Calls that keep the flat (row-major) order of the elements: a reshape chain runs through them.
_ORDER_KEEPING = frozenset({
    "view", "view_as", "reshape", "reshape_as", "flatten", "unflatten", "squeeze", "unsqueeze", "contiguous",
    "float", "double", "half", "bfloat16", "long", "int", "short", "to", "type", "type_as", "clone", "detach", "cpu",
    "cuda",
})


class ReshapeOrigins:
    """The shape each reshaped tensor of the first step was reshaped from (by identity, forgotten with it)."""

    def __init__(self) -> None:
        self._origins: dict[int, tuple[weakref.ref, tuple[int, ...]]] = {}

    def origin(self, t: Any) -> Optional[tuple[int, ...]]:
        """The shape ``t`` was reshaped from, or None when it was not made by a reshape."""
        entry = self._origins.get(id(t)) if isinstance(t, torch.Tensor) else None
        return entry[1] if entry is not None and entry[0]() is t else None

    def after(self, func: Any, args: tuple, result: Any) -> None:
        if not isinstance(result, torch.Tensor) or not args or not isinstance(args[0], torch.Tensor):
            return
        if function_name(func) not in _ORDER_KEEPING:
            return
        source = self.origin(args[0]) or tuple(args[0].shape)
        if source != tuple(result.shape):
            try:
                self._origins[id(result)] = (weakref.ref(result), source)
            except TypeError:
                pass


def check(cb: Any, trainer: Any, call: Any, origins: ReshapeOrigins, name: str, where: Optional[str]) -> None:
    """Report a ``(N, C)`` prediction whose rows mix classes and positions (hard ``(N,)`` targets only)."""
    if call.input.dim() != 2 or call.target.dim() != 1 or call.target.is_floating_point():
        return
    source = origins.origin(call.input)
    if source is None:
        return
    axis = class_axis.interleaved_class_axis(source, tuple(call.input.shape), origins.origin(call.target))
    if axis is None:
        return
    classes = int(call.input.shape[1])
    order = [k for k in range(len(source)) if k != axis] + [axis]
    cb.report(
        trainer, "loss-input", Severity.ERROR,
        f"{name} got a prediction {tuple(call.input.shape)} reshaped from {source} whose class axis (dim {axis}, "
        f"size {classes}) is not its last: each row handed to the loss is {classes} neighbouring positions of one "
        "class map, not one position's class scores, so classes and positions interleave and the loss trains on "
        "scrambled pairs.",
        f"Move the class axis last before flattening: `logits.permute({', '.join(map(str, order))})"
        f".reshape(-1, {classes})`, or give {name} the unflattened logits {source} with the target "
        "unflattened too (it takes the class axis at dim 1).",
        where=where, key="class-axis-interleaved",
        data={"loss": name, "source_shape": list(source), "prediction_shape": list(call.input.shape),
              "class_axis": axis, "classes": classes})


def check_permuted(cb: Any, trainer: Any, call: Any, origins: ReshapeOrigins, name: str, where: Optional[str]) -> None:
    """Report a loss input reshaped into its own sizes in another order (``view`` where ``transpose`` was meant)."""
    source, shape = origins.origin(call.input), tuple(call.input.shape)
    if not class_axis.permuted_by_reshape(source, shape):
        return
    target = call.target if isinstance(call.target, torch.Tensor) else None
    if target is not None and tuple(target.shape) == shape and origins.origin(target) == source:
        return  # an elementwise loss on a target reshaped the same way: the pairs still match
    order = [source.index(s) for s in shape] if len(set(source)) == len(source) and len(source) == len(shape) else None
    fix = f"`.permute({', '.join(map(str, order))})`" if order else "`.permute(...)` / `.transpose(...)`"
    cb.report(
        trainer, "loss-input", Severity.ERROR,
        f"{name} got a prediction {shape} made by a view/reshape of a {source} tensor: the same sizes in another "
        "order. A reshape keeps the elements' flat order, so each position of the result holds values of other "
        "positions and classes: the loss trains on scrambled pairs.",
        f"Reorder axes with {fix} (e.g. `logits.transpose(1, 2)` for (B, T, C) -> (B, C, T)), not with view/reshape.",
        where=where, key="permuted-by-reshape",
        data={"loss": name, "source_shape": list(source), "prediction_shape": list(shape)})


def check_flatten_order(cb: Any, trainer: Any, call: Any, origins: ReshapeOrigins, name: str,
                        where: Optional[str], classification: bool) -> None:
    """Report a prediction and a target flattened from the same positions in two orders (time- vs batch-major)."""
    target = call.target if isinstance(call.target, torch.Tensor) else None
    if target is None:
        return
    shape = tuple(call.input.shape)
    if classification:
        if call.input.dim() != 2 or target.dim() != 1 or target.is_floating_point():
            return
        classes: Optional[int] = shape[1]
    elif tuple(target.shape) == shape:
        classes = None
    else:
        return
    source, target_source = origins.origin(call.input), origins.origin(target)
    if not class_axis.flatten_orders_disagree(source, shape, target_source, classes):
        return
    positions = source[:-1] if classes is not None else source
    cb.report(
        trainer, "loss-input", Severity.ERROR,
        f"{name} got a prediction {shape} flattened from {source} and a target {tuple(target.shape)} flattened "
        f"from {target_source}: the same positions in two different orders ({positions} against {target_source}, "
        "e.g. a time-major (T, B) RNN output against batch-major (B, T) labels). Row r of one is not row r of the "
        "other, so nearly every prediction is scored against another sample's or position's target.",
        f"Bring the prediction to the target's layout before flattening (e.g. `logits.transpose(0, 1)` for a "
        "time-major (T, B, C) output, or `batch_first=True` on the RNN), or flatten both from the same layout.",
        where=where, key="flatten-order-mismatch",
        data={"loss": name, "source_shape": list(source), "prediction_shape": list(shape),
              "target_source_shape": list(target_source), "target_shape": list(target.shape)})

"""Watching the torch calls of one training step, for the fit-start checks (loss inputs, input normalisation).

A :class:`StepWatch` is a ``torch.overrides.TorchFunctionMode`` that only looks: every call goes through unchanged
(same function, same arguments, same result), and the watcher's own code runs with the mode switched off, so it
neither recurses nor changes what the user's step computes. It is pushed at the start of the first training batch
and removed at the first of ``on_before_backward`` / ``on_train_batch_end`` / ``on_exception``, even when other
modes were pushed above it meanwhile, so it never outlives the step.

It also tags tensors with where they came from: the module whose ``weight`` produced them (``linear`` and
convolutions), a ``sigmoid`` / ``softmax`` applied to them, an activation that is never negative (``softplus``,
``relu``, ``exp``), carried through views, reshapes and dtype casts. That is
how a loss call learns which layer made its prediction and whether a sigmoid was already applied.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any, Callable, Optional

import torch
from torch.overrides import TorchFunctionMode

log = logging.getLogger(__name__)

#: Calls that give the same values in another shape or dtype: a tag carries over them.
SHAPE_OPS = frozenset({
    "view", "view_as", "reshape", "reshape_as", "squeeze", "unsqueeze", "flatten", "permute", "transpose", "movedim",
    "contiguous", "__getitem__", "float", "double", "half", "bfloat16", "to", "type", "type_as", "clone", "t",
    "select", "narrow", "expand", "expand_as", "detach", "cpu", "cuda", "long", "int", "short",
})
#: Calls that only read a tensor's metadata; they say nothing about what is done with its values.
META_OPS = frozenset({
    "dim", "ndimension", "size", "numel", "nelement", "__get__", "__len__", "is_floating_point", "is_complex",
    "element_size", "stride", "is_contiguous", "data_ptr", "get_device", "__format__", "__repr__", "__hash__",
    "storage_offset", "requires_grad_", "__iter__", "untyped_storage",
})
WEIGHTED_OPS = frozenset({"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                          "conv_transpose3d", "bilinear"})
#: Squashing activations: a tensor they produced is bounded, and for some of them a probability.
PROBABILITY_OPS = {"sigmoid": "sigmoid", "expit": "sigmoid", "softmax": "softmax", "tanh": "tanh", "hardtanh": "tanh"}
#: The range of the squashing ops whose bounds do not depend on their arguments (hardtanh's do).
BOUNDED_OPS = {"sigmoid": (0.0, 1.0), "expit": (0.0, 1.0), "tanh": (-1.0, 1.0)}
#: Activations whose every output is >= 0 whatever their input: a prediction they produced can never be negative
#: (a log-rate or log-probability read from it is bounded below by 0).
NONNEGATIVE_OPS = frozenset({"softplus", "relu", "relu6", "exp", "abs", "square", "sigmoid", "expit", "softmax"})


def function_name(func: Any) -> str:
    return getattr(func, "__name__", "") or ""


class Tags:
    """Tags (or any facts) of live tensors, by identity, forgotten with the tensor (never compared by value)."""

    def __init__(self) -> None:
        self._tags: dict[int, tuple[weakref.ref, Any]] = {}

    def __len__(self) -> int:
        return len(self._tags)

    def get(self, tensor: Any) -> Any:
        if not isinstance(tensor, torch.Tensor):
            return None
        entry = self._tags.get(id(tensor))
        if entry is None or entry[0]() is not tensor:
            return None
        return entry[1]

    def set(self, tensor: Any, tag: Any) -> None:
        if isinstance(tensor, torch.Tensor):
            try:
                self._tags[id(tensor)] = (weakref.ref(tensor), tag)
            except TypeError:
                pass

    def clear(self) -> None:
        self._tags.clear()


class StepWatch(TorchFunctionMode):
    """Calls ``before(func, args, kwargs)`` ahead of each torch call and ``after(func, args, kwargs, result)``
    after it; a failure in either is logged once and switches the watcher off, never reaching the user's step.

    Args:
        before: called before the call runs (so its findings survive a call that raises).
        after: called with the result.
        weights: ``{id(parameter): module name}`` of the weights whose outputs get a ``module`` tag.
    """

    def __init__(
        self,
        before: Optional[Callable[..., None]] = None,
        after: Optional[Callable[..., None]] = None,
        weights: Optional[dict[int, str]] = None,
    ) -> None:
        super().__init__()
        self.before, self.after = before, after
        self.weights = weights or {}
        self.tags = Tags()
        self.failed: Optional[BaseException] = None
        self.active = False

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if self.failed is None and self.before is not None:
            try:
                self.before(func, args, kwargs)
            except Exception as err:  # never into the user's step
                self._fail(err)
        result = func(*args, **kwargs)
        if self.failed is None:
            try:
                self._tag(func, args, result)
                if self.after is not None:
                    self.after(func, args, kwargs, result)
            except Exception as err:
                self._fail(err)
        return result

    def _fail(self, err: BaseException) -> None:
        self.failed = err
        log.warning("lightning_sanity: stopped watching the first training step after an internal error: %r", err)

    def _tag(self, func: Any, args: tuple, result: Any) -> None:
        if not isinstance(result, torch.Tensor) or not args:
            return
        name = function_name(func)
        if name in SHAPE_OPS:
            tag = self.tags.get(args[0])
            if tag is not None:
                self.tags.set(result, tag)
        elif name in WEIGHTED_OPS and len(args) > 1:
            module = self.weights.get(id(args[1]))
            if module is not None:
                self.tags.set(result, {"module": module})
        elif name in PROBABILITY_OPS:
            tag = self.tags.get(args[0]) or {}
            self.tags.set(result, {**tag, "activation": PROBABILITY_OPS[name], "range": BOUNDED_OPS.get(name),
                                   **({"nonnegative": name} if name in NONNEGATIVE_OPS else {})})
        elif name in NONNEGATIVE_OPS:
            # Only the bound is carried: a ReLU'd or exponentiated tensor is no longer the layer's raw output.
            self.tags.set(result, {"nonnegative": name})

    def start(self) -> "StepWatch":
        if not self.active:
            self.__enter__()
            self.active = True
        return self

    def stop(self) -> None:
        """Remove this mode from the stack, wherever it sits; a no-op when it is not there. Never raises."""
        if not self.active:
            return
        self.active = False
        self.tags.clear()
        try:
            stack = torch.overrides._get_current_function_mode_stack()
            if not any(m is self for m in stack):
                return
            above = []
            while True:  # pop the modes pushed above this one, then put them back in order
                top = torch._C._pop_torch_function_stack()
                if top is self:
                    break
                above.append(top)
            for mode in reversed(above):
                torch._C._push_on_torch_function_stack(mode)
        except Exception as err:  # pragma: no cover - defensive: never into the user's step
            log.warning("lightning_sanity: could not remove the first-step watcher: %r", err)


def weight_owners(module: torch.nn.Module) -> dict[int, str]:
    """``{id(weight): module name}`` for every submodule with a ``weight`` parameter."""
    owners: dict[int, str] = {}
    for name, sub in module.named_modules():
        weight = getattr(sub, "weight", None)
        if isinstance(weight, torch.nn.Parameter) and name:
            owners.setdefault(id(weight), name)
    return owners


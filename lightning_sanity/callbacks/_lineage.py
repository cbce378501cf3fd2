"""Where the tensors of the first training step come from: the model's parameters, the batch's target, or both.

:class:`Lineage` is fed every torch call the first step's :class:`~lightning_sanity.callbacks._step_watch.StepWatch`
sees (after it ran). A result inherits the lineage of its tensor arguments; a call that takes one of the model's
parameters adds ``"output"``; the batch's target starts as ``"target"``. An element-wise op between a tensor made
only from the model's output and one made only from the target whose result grows by a whole batch size is
reported once (:mod:`lightning_sanity.checks.pair_broadcast`): a hand-written loss whose shapes pair every
prediction with every target. Only shapes are read: no value, no host sync.

Example::

    >>> import torch
    >>> w = torch.nn.Parameter(torch.ones(3, 2)); y = torch.zeros(4, 1, 1)
    >>> lineage = Lineage({id(w)}, y)
    >>> x = torch.ones(4, 2); out = torch.nn.functional.linear(x, w)
    >>> lineage.after(torch.nn.functional.linear, (x, w), {}, out), lineage.after(torch.Tensor.__sub__, (y, out), {}, y - out)
    (False, True)
    >>> lineage.found["result"]
    (4, 4, 3)
"""

from __future__ import annotations

import weakref
from typing import Any, Optional

import torch

from lightning_sanity.callbacks._step_watch import META_OPS, function_name
from lightning_sanity.checks.pair_broadcast import ELEMENTWISE_OPS, pairwise_broadcast

_OUTPUT, _TARGET, _MARKED = 1, 2, 4
#: Made (also) by a parameter that trains (``requires_grad``): a target carrying it moves with the model itself.
_TRAINED = 8
_KINDS = _OUTPUT | _TARGET | _MARKED
#: Ops whose values do not depend on their tensor argument's values (only its shape): a GAN's
#: ``torch.ones_like(d_fake)`` is not made by the model.
SHAPE_ONLY_OPS = frozenset({"ones_like", "zeros_like", "full_like", "empty_like", "new_ones", "new_zeros", "new_full",
                            "new_empty"})
#: Ops that write the target into a class axis (``one_hot(y)``, ``scatter(1, y, ...)``): a result made from the model's
#: output and one of them holds logits the target has edited, as a margin head (ArcFace, CosFace) makes them.
MARKING_OPS = frozenset({"one_hot", "scatter", "scatter_", "scatter_add", "scatter_add_", "index_put", "index_put_",
                         "index_fill", "index_fill_"})


def _tensors(value: Any, depth: int = 0) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if depth < 2 and isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v, depth + 1)]
    return []


class Lineage:
    """Lineage flags of live tensors (by identity, forgotten with the tensor), and the first pairwise broadcast.

    Args:
        parameters: ``id`` of every model parameter.
        target: the batch's target tensor, or None (then no pairwise broadcast is ever found).
        trainable: ``id`` of the parameters that train (``requires_grad``), a subset of ``parameters``.
    """

    def __init__(self, parameters: set[int], target: Any, trainable: Optional[set[int]] = None) -> None:
        self.parameters = parameters
        self.trainable = trainable or set()
        self.batch = int(target.shape[0]) if isinstance(target, torch.Tensor) and target.dim() > 0 else 0
        self._flags: dict[int, tuple[weakref.ref, int]] = {}
        self.found: Optional[dict[str, Any]] = None
        if self.batch:
            self._set(target, _TARGET)

    def _get(self, t: torch.Tensor) -> int:
        entry = self._flags.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else 0

    def _set(self, t: torch.Tensor, flags: int) -> None:
        try:
            self._flags[id(t)] = (weakref.ref(t), flags)
        except TypeError:
            pass

    def margin_logits(self, t: Any) -> bool:
        """Whether ``t`` was made from the model's output and the target written into a class axis (a margin head's
        logits: the loss at init then sits above ln C by design)."""
        return isinstance(t, torch.Tensor) and self._get(t) & (_OUTPUT | _MARKED) == _OUTPUT | _MARKED

    def made_by_model(self, t: Any) -> Optional[str]:
        """Whether ``t`` was computed from the model's parameters: ``"trained"`` (some of them train), ``"frozen"``
        (only parameters that do not: a teacher, a target network), or None (not from the model, or unknown).

        >>> w, frozen = torch.nn.Parameter(torch.ones(1, 2)), torch.nn.Parameter(torch.ones(1, 2), requires_grad=False)
        >>> lineage = Lineage({id(w), id(frozen)}, None, {id(w)})
        >>> with torch.no_grad():
        ...     out = torch.nn.functional.linear(torch.ones(4, 2), frozen)
        >>> _ = lineage.after(torch.nn.functional.linear, (torch.ones(4, 2), frozen), {}, out)
        >>> scaled = 0.9 * out; _ = lineage.after(torch.Tensor.__mul__, (out, 0.9), {}, scaled)
        >>> lineage.made_by_model(scaled), lineage.made_by_model(torch.ones(4, 1))
        ('frozen', None)
        """
        flags = self._get(t) if isinstance(t, torch.Tensor) else 0
        if not flags & _OUTPUT:
            return None
        return "trained" if flags & _TRAINED else "frozen"

    def after(self, func: Any, args: tuple, kwargs: dict, result: Any) -> bool:
        """Record the lineage of ``result``; returns True when this call is a pairwise broadcast (found first)."""
        name = function_name(func)
        if name in META_OPS:
            return False
        inputs = _tensors(args) + _tensors(list(kwargs.values()))
        flags = 0
        for t in inputs:
            if id(t) in self.parameters:
                flags |= _OUTPUT | (_TRAINED if id(t) in self.trainable else 0)
            else:
                flags |= self._get(t)
        if name in SHAPE_ONLY_OPS:
            flags &= ~(_OUTPUT | _TRAINED)
        outputs = _tensors(result)
        if flags & _TARGET and name in MARKING_OPS:
            flags |= _MARKED
        if flags:
            for t in outputs:
                self._set(t, flags | self._get(t))
        # Without a batch target only the model's lineage is followed (a target the step computes from a module).
        if not self.batch or self.found is not None or name not in ELEMENTWISE_OPS or len(outputs) != 1:
            return False
        pred = next((t for t in inputs if self._get(t) & _KINDS == _OUTPUT), None)
        target = next((t for t in inputs if self._get(t) & _KINDS == _TARGET), None)
        out = outputs[0]
        if pred is None or target is None or not pairwise_broadcast(pred.shape, target.shape, out.shape, self.batch):
            return False
        self.found = {"op": name.strip("_"), "prediction": tuple(pred.shape), "target": tuple(target.shape),
                      "result": tuple(out.shape), "batch": self.batch}
        return True

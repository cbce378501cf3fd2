"""A prediction and the batch's target broadcast against each other into a batch-by-batch result.

An element-wise op (``-``, ``*``, ``<``, ``torch.where``, ``torch.maximum`` ...) between a tensor made from the
model's output and one made from the batch's target should pair sample ``i``'s prediction with sample ``i``'s
target: its result is no larger than its larger operand (a (B, 1) target against (B, 3) quantile predictions gives
(B, 3)). When the result holds ``B`` times the larger operand's elements, the two batch dimensions landed on
different axes and every prediction meets every target of the batch: a (B, 1, 1) or (B,) target against (B, 3) or
(B, 1) predictions. Broadcasting alone can only multiply the size by products of the operands' own dimensions, so
a growth of a whole batch size is the batch dimension paired with itself. Pairwise losses that mean to build B x B
(contrastive logits, ranking margins) build it from two outputs or two targets, not from an output and the target,
so the rule stays silent on them.

Example::

    >>> pairwise_broadcast((64, 3), (64, 1, 1), (64, 64, 3), batch=64)
    True
    >>> pairwise_broadcast((64, 3), (64, 1), (64, 3), batch=64)
    False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

#: Element-wise ops whose operands broadcast, by the name torch gives the function (``Tensor.__sub__``, ``torch.sub``).
ELEMENTWISE_OPS = frozenset({
    "sub", "subtract", "rsub", "add", "mul", "multiply", "div", "divide", "true_divide", "pow", "where",
    "maximum", "minimum", "fmax", "fmin", "lt", "gt", "le", "ge", "eq", "ne", "less", "greater", "less_equal",
    "greater_equal", "not_equal", "__sub__", "__rsub__", "__add__", "__radd__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__pow__", "__rpow__", "__lt__", "__gt__", "__le__", "__ge__", "__eq__", "__ne__",
})


def pairwise_broadcast(prediction: Sequence[int], target: Sequence[int], result: Sequence[int], batch: int) -> bool:
    """Whether an element-wise op between a ``prediction``-derived and a ``target``-derived tensor (their shapes)
    gave a ``result`` holding ``batch`` times more elements than the larger of the two: every prediction of the
    batch paired with every target. Both operands must carry the batch (at least ``batch`` elements)."""
    if batch < 2:
        return False
    sizes = [math.prod(prediction), math.prod(target)]
    if min(sizes) < batch:
        return False
    return math.prod(result) >= batch * max(sizes)


def describe(op: str, prediction: Sequence[int], target: Sequence[int], result: Sequence[int],
             batch: int) -> dict[str, Any]:
    """The finding's message, advice and data for :func:`pairwise_broadcast`'s case."""
    p, t, r = tuple(prediction), tuple(target), tuple(result)
    message = (f"`{op}` combined the model's output {p} with the batch's target {t} into {r}: the shapes broadcast "
               f"so that each of the {batch} predictions meets every target of the batch ({batch} x {batch} pairs), "
               "and the loss averages over the wrong pairs without any error.")
    advice = ("Give the target the prediction's layout before combining them: a (B,) target against (B, K) "
              "predictions needs `target.view(-1, 1)`, a (B, 1) prediction against a (B,) target `pred.squeeze(-1)`; "
              "`assert (target - pred).shape == pred.shape` in the loss catches it.")
    return {"message": message, "advice": advice,
            "data": {"op": op, "prediction_shape": list(p), "target_shape": list(t), "result_shape": list(r),
                     "batch": batch}}

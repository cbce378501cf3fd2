"""A class axis flattened into the rows of a classification loss: ``logits.reshape(-1, C)`` of (B, C, H, W) logits.

A row-major reshape to ``(N, C)`` makes each row ``C`` consecutive elements of the source tensor. When the source's
class axis is its last one (``logits.permute(0, 2, 3, 1)``, ``x.flatten(2).transpose(1, 2)``), a row is one
pixel's ``C`` scores; when the class axis sits earlier (``(B, C, H, W)`` straight from a conv), a row is ``C``
neighbouring pixels of one class map, and each pixel's scores are spread over ``C`` rows: classes and pixels
interleave. The loss still runs (the element count matches) and even falls a little, since the model can learn a
pattern that partly fits the scrambled rows.

Which axis of the source is the class axis is read from the target, not guessed: the target the loss compares
with (``masks.reshape(-1)``) was flattened from a tensor whose shape is the source's without exactly one axis of
size ``C``. The rule fires when that axis is unique and is not the last axis of the source. Only shapes are read.

A second rule, :func:`permuted_by_reshape`: a loss input made by ``view``/``reshape`` whose sizes are those of its
source in another order (``logits.view(B, C, T)`` of ``(B, T, C)`` logits, where ``transpose(1, 2)`` was meant).
A reshape keeps the flat order of the elements, so the new axes cut it at other places: every position gets
values of other positions and classes. No legitimate reshape reorders a tensor's sizes (sizes of 1 aside), since
the result's axes would mean what the source's did only if the source's were mislabelled.

A third rule, :func:`flatten_orders_disagree`: prediction and target are both flattened, but from sources whose
position axes hold the same sizes in another order (``(T, B, C)`` logits of a time-major RNN against ``(B, T)``
labels). Each flattens to ``T * B`` rows, one time-major and one batch-major, so row ``r`` pairs token
``(r // B, r % B)`` with the label of token ``(r // T, r % T)``: nearly every prediction meets another sample's
label at another position. No healthy flatten pairs two different orders of the same positions.

Example::

    >>> interleaved_class_axis((8, 3, 16, 16), (2048, 3), (8, 16, 16))
    1
    >>> interleaved_class_axis((8, 16, 16, 3), (2048, 3), (8, 16, 16)) is None  # permuted first: healthy
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional


def interleaved_class_axis(source: Sequence[int], prediction: Sequence[int],
                           target_source: Optional[Sequence[int]]) -> Optional[int]:
    """The source's class axis when a ``(N, C)`` prediction reshaped from ``source`` interleaves classes and
    positions, else None.

    ``source`` is the shape the prediction was reshaped from (no permute or transpose in between), and
    ``target_source`` the shape the loss's ``(N,)`` target was reshaped from (None when it was not reshaped: then
    nothing tells which axis holds the classes, and the rule stays silent).
    """
    source, prediction = tuple(int(s) for s in source), tuple(int(s) for s in prediction)
    if target_source is None or len(prediction) != 2 or len(source) < 3:
        return None
    target_source = tuple(int(s) for s in target_source)
    classes = prediction[1]
    if classes < 2 or math.prod(source) != math.prod(prediction) or math.prod(target_source) != prediction[0]:
        return None
    axes = [k for k, size in enumerate(source)
            if size == classes and source[:k] + source[k + 1:] == target_source]
    if len(axes) != 1 or axes[0] == len(source) - 1:
        return None  # the class axis is last (a correct flatten) or cannot be told apart from another axis
    return axes[0]


def permuted_by_reshape(source: Optional[Sequence[int]], shape: Sequence[int]) -> bool:
    """Whether ``shape``, made from ``source`` by reshapes only, holds the same sizes in another order (sizes of 1
    ignored: moving them does not move any element).

    >>> permuted_by_reshape((16, 12, 9), (16, 9, 12))
    True
    >>> permuted_by_reshape((16, 1, 9), (16, 9, 1)), permuted_by_reshape((16, 12, 9), (192, 9))
    (False, False)
    >>> permuted_by_reshape((4, 4, 3), (4, 4, 3)), permuted_by_reshape(None, (2, 3))
    (False, False)
    """
    if source is None:
        return False
    a = [int(s) for s in source if int(s) != 1]
    b = [int(s) for s in shape if int(s) != 1]
    return len(a) >= 2 and sorted(a) == sorted(b) and a != b


def flatten_orders_disagree(source: Optional[Sequence[int]], prediction: Sequence[int],
                            target_source: Optional[Sequence[int]], classes: Optional[int]) -> bool:
    """Whether a prediction and a target, each reshaped from its own source, flatten the same positions in two
    different orders (sizes of 1 ignored).

    ``classes`` is the class count of a ``(N, C)`` classification input (its source's last axis must be the class
    axis, which is then not a position), None for an elementwise loss (prediction and target of one shape).

    >>> flatten_orders_disagree((20, 32, 6), (640, 6), (32, 20), 6)  # time-major logits, batch-major labels
    True
    >>> flatten_orders_disagree((32, 20, 6), (640, 6), (32, 20), 6), flatten_orders_disagree((20, 32, 1), (640,), (32, 20), None)
    (False, True)
    >>> flatten_orders_disagree((16, 16, 6), (256, 6), (16, 16), 6), flatten_orders_disagree(None, (640, 6), (32, 20), 6)
    (False, False)
    """
    if source is None or target_source is None:
        return False
    source = tuple(int(s) for s in source)
    if classes is not None:
        if len(prediction) != 2 or not source or source[-1] != classes:
            return False
        source = source[:-1]
    rows = prediction[:1] if classes is not None else prediction  # the positions the loss pairs
    a = [s for s in source if s != 1]
    b = [int(s) for s in target_source if int(s) != 1]
    return len(a) >= 2 and math.prod(a) == math.prod(int(s) for s in rows) and sorted(a) == sorted(b) and a != b

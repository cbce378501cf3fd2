"""Input positions that spell the class together: each constant within every class, their joint values different
between every two classes, while the rest of the input varies within a class.

A jigsaw pretext task whose coordinate channels were added before the image was cut into tiles: each tile carries
where it came from, so the permutation label is the tuple of the coordinates at the tile slots. No one position
equals the label (each slot's coordinates are shared by several permutations), so
:func:`~lightning_sanity.checks.leakage.label_columns` finds nothing; together they are the label. The same holds
for any multi-position code of the class written into the input (a burned-in class pattern).

What chance allows: a position that varies over the batch is constant within every class of two or more samples by
accident only in a handful of classes; :data:`MIN_CLASSES` such classes and :data:`MIN_ROWS` of their rows are asked.
An input that is wholly a function of its class (a noise-free class template) is the task, not a leak, and is left
alone: some position must vary within a class.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(48) % 12
    >>> code = torch.stack([y // 4, y % 4], 1).float()        # two positions that together spell the class
    >>> image = torch.randn(48, 6, generator=g)
    >>> class_tuple(torch.cat([image, code], 1), y), class_tuple(image, y)
    ([6, 7], None)
"""

from __future__ import annotations

from typing import Optional

import torch

#: Classes of two or more samples, and their samples, needed for evidence.
MIN_CLASSES, MIN_ROWS = 6, 24


def class_tuple(x: torch.Tensor, y: torch.Tensor) -> Optional[list[int]]:
    """The positions of ``x`` (``(N, P)`` floats) constant within every class of ``y`` (``(N,)`` integers) and
    varying over the batch, whose joint values tell every two classes apart; None when there are none, when they do
    not, or when nothing varies within a class."""
    if x.dim() != 2 or y.dim() != 1 or x.shape[0] != y.shape[0] or not x.is_floating_point():
        return None
    x, y = x.detach().float(), y.detach().to(x.device)
    classes, inverse, counts = torch.unique(y, return_inverse=True, return_counts=True)
    multi = counts >= 2
    if int(multi.sum()) < MIN_CLASSES or int(counts[multi].sum()) < MIN_ROWS:
        return None
    index = inverse[:, None].expand_as(x)
    lo = torch.full((classes.numel(), x.shape[1]), float("inf"), device=x.device).scatter_reduce(0, index, x, "amin")
    hi = torch.full_like(lo, float("-inf")).scatter_reduce(0, index, x, "amax")
    within = (lo == hi)[multi].all(0)  # constant inside every class that could show otherwise
    varies = x.amax(0) > x.amin(0)
    columns = within & varies
    if not bool(columns.any()) or not bool((varies & ~within).any()):
        return None
    if torch.unique(lo[:, columns], dim=0).shape[0] != classes.numel():
        return None
    return columns.nonzero().flatten().tolist()

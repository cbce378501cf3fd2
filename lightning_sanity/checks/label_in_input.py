"""A label that indexes its own input's columns: a sparse ``(N, C)`` input (the multi-hot of a user's items, a bag of
classes) and an integer label ``(N,)`` in ``[0, C)``.

Leave-one-out evaluation of a recommender holds one item per user out and asks for it from the rest: the held-out
item's column is zero in every validation input. A validation set whose inputs are built from the full history
switches it on in every row, and the model reads its answer. By chance the label falls on a non-zero column at
about the input's density ``d``, so all ``N`` rows of a batch do with probability ``d ** N``.

Example::

    >>> import torch
    >>> x, y = torch.zeros(32, 10), torch.arange(32) % 10
    >>> label_hits(x, y)
    (0, 32, 0.0)
    >>> x[torch.arange(32), y] = 1.0
    >>> reads_label(label_hits(x, y))
    True
"""

from __future__ import annotations

from typing import Optional

import torch

#: Rows needed either way: fewer say little about a held-out protocol or a copied answer.
MIN_ROWS = 16
#: Densest input judged: a dense input holds every label's column by construction.
MAX_DENSITY = 0.5
#: The chance ``d ** N`` below which every row holding its label is no coincidence.
CHANCE = 1e-6


def label_hits(x: torch.Tensor, y: torch.Tensor) -> Optional[tuple[int, int, float]]:
    """``(hits, rows, density)``: the rows whose input is non-zero at the label's column, the rows, and the share of
    non-zero entries of the input. None when the layout does not apply (``x`` not a float ``(N, C)``, ``y`` not an
    integer ``(N,)`` in ``[0, C)``, fewer than :data:`MIN_ROWS` rows)."""
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor) or x.dim() != 2 or y.dim() != 1:
        return None
    if y.is_floating_point() or y.dtype == torch.bool or not x.is_floating_point() or y.shape[0] != x.shape[0]:
        return None  # an integer input is token ids, whose non-padding positions a small label always indexes
    rows, width = int(x.shape[0]), int(x.shape[1])
    if rows < MIN_ROWS or width < 3 or x.is_complex():
        return None
    low, high = torch.aminmax(y)
    if int(low) < 0 or int(high) >= width:
        return None
    on = x != 0
    hits = int(on.gather(1, y.long().to(x.device)[:, None]).sum())
    return hits, rows, float(on.float().mean())


def reads_label(found: Optional[tuple[int, int, float]]) -> bool:
    """Whether every row's input holds its label, in a sparse input where chance would not put it there."""
    if found is None:
        return False
    hits, rows, density = found
    return hits == rows and density <= MAX_DENSITY and density ** rows < CHANCE


def held_out(found: Optional[tuple[int, int, float]]) -> bool:
    """Whether no row's input holds its label: the label is the column taken out of the input (leave-one-out)."""
    return found is not None and found[0] == 0 and found[2] > 0

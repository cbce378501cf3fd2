"""Per-position features of a next-element task that are fixed by the sequence's length: a "progress" feature
``(t + 1) / len(case)``, the events still to come ``len - t``, a flag on the last event, the case's length itself.

In a padded batch of variable-length sequences, such a channel is the same in every row of one length and differs
between lengths at the same position. When the model predicts the next element, the length is the future: the
feature tells it how many elements remain and when the sequence ends. A channel computed from what is known at
``t`` (the position, ``log1p(t)``, the time elapsed so far) is the same for every length, or differs within one.

Example::

    >>> import torch
    >>> lengths = torch.tensor([3, 3, 5, 5, 7, 7, 4, 4])
    >>> t = torch.arange(8).expand(8, 8).float()
    >>> real = t < lengths[:, None]
    >>> progress = torch.where(real, (t + 1) / (lengths[:, None] + 1), 0.0)
    >>> length_channels(real, {"numeric": torch.stack([torch.log1p(t) * real, progress], -1)})
    [('numeric', 1)]
"""

from __future__ import annotations

from typing import Optional

import torch

#: Distinct lengths, each in at least two rows, needed: fewer say nothing about a function of the length.
MIN_LENGTHS = 3
#: Rows in those lengths needed: equal rows within a length by chance get rarer with each row.
MIN_ROWS = 8
MAX_CHANNELS = 64


def shifted_with_end(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether integer targets ``y`` (``(B, T)``, negative where ignored) are the inputs ``x`` shifted by one at every
    position but each row's last target (an end marker, in no input): a next-element task that
    :func:`~lightning_sanity.checks.leakage.shift_axis` does not take for one.

    >>> x = torch.tensor([[1, 2, 3, 0], [2, 3, 0, 0]])
    >>> shifted_with_end(x, torch.tensor([[2, 3, 9, -100], [3, 9, -100, -100]]))
    True
    """
    if x.dim() != 2 or y.shape != x.shape or x.is_floating_point() or y.is_floating_point() or x.shape[1] < 3:
        return False
    used = y >= 0
    last = torch.arange(y.shape[1], device=y.device)[None, :] == used.sum(1, keepdim=True) - 1
    compared = (used & ~last)[:, :-1]
    if int(compared.sum()) < y.shape[0] or lengths_of(used) is None:
        return False
    return bool(((x[:, 1:] == y[:, :-1]) | ~compared).all())


def lengths_of(real: torch.Tensor) -> Optional[torch.Tensor]:
    """Each row's length when its real positions (``real``, ``(B, T)`` bool) are a prefix of the row, else None."""
    lengths = real.sum(1)
    prefix = torch.arange(real.shape[1], device=real.device)[None, :] < lengths[:, None]
    return lengths if bool(torch.equal(prefix, real)) else None


def length_channels(real: torch.Tensor, features: dict[str, torch.Tensor]) -> list[tuple[str, int]]:
    """``[(name, channel)]`` of the ``(B, T)`` or ``(B, T, C)`` features that are, over the real positions, the same
    in every row of one length and different between at least :data:`MIN_LENGTHS` lengths at the first position."""
    lengths = lengths_of(real)
    if lengths is None:
        return []
    values, counts = torch.unique(lengths[lengths > 0], return_counts=True)
    kept = values[counts >= 2]
    if kept.numel() < MIN_LENGTHS or int(counts[counts >= 2].sum()) < MIN_ROWS:
        return []
    found = []
    for name, value in features.items():
        v = value.detach()
        v = v[..., None] if v.dim() == 2 else v
        if v.dim() != 3 or tuple(v.shape[:2]) != tuple(real.shape) or v.shape[2] > MAX_CHANNELS or v.is_complex():
            continue
        v = torch.where(real[..., None], v, torch.zeros((), dtype=v.dtype, device=v.device))
        groups = [v[lengths == length] for length in kept.tolist()]
        # Per channel: every row of a length equal to its first row, and the lengths' first values all distinct.
        same = torch.stack([(rows == rows[:1]).all(1).all(0) for rows in groups]).all(0)
        first = torch.stack([rows[0, 0] for rows in groups])  # (lengths, C)
        distinct = torch.tensor([torch.unique(first[:, c]).numel() == first.shape[0] for c in range(first.shape[1])],
                                dtype=torch.bool, device=same.device)
        found += [(str(name), int(c)) for c in (same & distinct).nonzero().flatten().tolist()]
    return found

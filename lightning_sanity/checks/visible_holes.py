"""An inpainting model given the image it must fill in: its input holds a hole mask channel beside a channel equal,
at every position, to another tensor of the batch (the target). With the hole punched into a view of the stored
image (``holed = self.images[i]``, then ``holed[..., r:r + 3, c:c + 3] = 0``) the target is the holed image too; with
the unmasked image passed instead of ``x * (1 - m)`` the input shows what the hole hides. A correct pipeline's
masked channel differs from the target inside the holes.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> image, mask = torch.rand(8, 1, 6, 6, generator=g), torch.zeros(8, 1, 6, 6)
    >>> mask[:, :, 1:3, 2:4] = 1
    >>> visible_hole(torch.cat([image, mask], 1), [image])              # the image itself beside its mask
    (0, 1, 0, 0)
    >>> visible_hole(torch.cat([image * (1 - mask), mask], 1), [image]) is None
    True
"""

from __future__ import annotations

from typing import Optional

import torch

#: Samples needed: every one must show its whole target beside a hole.
MIN_SAMPLES = 8


def hole_channels(x: torch.Tensor) -> list[int]:
    """Channels of ``x`` (``(B, C, ...)``) holding 0/1 only, with some 1s and a majority of 0s in every sample: a
    hole mask (what is hidden), not a validity mask (mostly 1s)."""
    found = []
    for k in range(int(x.shape[1])):
        m = x[:, k].reshape(x.shape[0], -1)
        if not bool(((m == 0) | (m == 1)).all()):
            continue
        ones = m.sum(1)
        if bool((ones > 0).all()) and bool((ones < m.shape[1] / 2).all()):
            found.append(k)
    return found


def visible_hole(x: torch.Tensor, others: list[torch.Tensor]) -> Optional[tuple[int, int, int, int]]:
    """``(input channel, hole channel, index in others, its channel)`` when a channel of ``x`` (float, ``(B, C, H,
    W)`` or ``(B, C, T)``, two channels or more) that is no hole mask equals a channel of one of ``others`` (tensors
    of the batch with ``x``'s sample and spatial shape) at every position of every sample, while another channel
    of ``x`` is a hole mask; else None."""
    if not x.is_floating_point() or x.dim() not in (3, 4) or x.shape[1] < 2 or x.shape[0] < MIN_SAMPLES:
        return None
    given, x = x, x.detach()
    holes = hole_channels(x)
    if not holes:
        return None
    for j in range(int(x.shape[1])):
        if j in holes or bool((x[:, j] == x[:, j].flatten()[0]).all()):
            continue  # a constant channel equals any constant target
        for i, other in enumerate(others):
            if not isinstance(other, torch.Tensor) or other is given or not other.is_floating_point() \
                    or other.dim() != x.dim() or other.shape[0] != x.shape[0] or other.shape[2:] != x.shape[2:]:
                continue
            for c in range(int(other.shape[1])):
                if bool(torch.equal(other[:, c].to(x.device, x.dtype), x[:, j])):
                    return j, holes[0], i, c
    return None

"""An autoregressive image (or channels-first signal) model that reads the pixel it predicts.

A PixelCNN-style model is trained with the image as both input and target: the output at pixel ``p`` predicts
pixel ``p`` from the pixels before it in raster order. Its masks make that output structurally independent of
every input after ``p``; the first layer's mask (type "A") must also hide pixel ``p`` itself. With a type "B" mask
there, the output at ``p`` reads its own target and the loss falls to zero by copying.

What the run can know, on the first batch, with the model as it is: when the loss's target is the model's input,

1. the outputs at pixels ``<= p`` are unchanged when every input after ``p`` changes (the model is causal in
   raster order: an autoencoder, a U-Net, a VAE read everything and stop here);
2. the output at ``p`` changes when the inputs before ``p`` change (it has a context to predict from: a per-pixel
   model with no context is not autoregressive);
3. the output at ``p``, channel ``c``, changes when only the input at ``p``, channel ``c``, changes: it reads its
   answer. (Channel ``c`` only: a colour PixelCNN may read the earlier channels of pixel ``p``.)

All three hold only for a causal model with a leak; a healthy PixelCNN fails (3) exactly (masked weights are exact
zeros), every non-causal model fails (1).

Example::

    >>> import torch
    >>> x = (torch.rand(4, 1, 4, 4, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    >>> flat = lambda f: (lambda t: f(t.flatten(2)).view_as(t))
    >>> reads_own = flat(lambda t: t.cumsum(-1))                  # output p = sum of inputs 0..p
    >>> hides_own = flat(lambda t: t.cumsum(-1) - t)              # output p = sum of inputs 0..p-1
    >>> raster_self_read(reads_own, x, torch.Generator().manual_seed(1)).kind
    'reads-own'
    >>> raster_self_read(hides_own, x, torch.Generator().manual_seed(1)).kind
    'causal'
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import torch

from lightning_sanity.checks.leakage import depends

#: Channels of the centre pixel tested one at a time (each costs a forward pass).
MAX_CHANNELS = 4


@dataclasses.dataclass
class RasterResult:
    """What the three perturbations showed: ``kind`` is ``"not-causal"``, ``"no-context"``, ``"causal"`` (healthy)
    or ``"reads-own"`` (the leak); ``position`` is ``p`` as ``(row, col)`` or ``(index,)``."""

    kind: str
    position: tuple[int, ...]
    positions: int
    change: float = 0.0
    scale: float = 0.0
    channel: Optional[int] = None


def _perturb(x: torch.Tensor, where: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x`` (B, C, P) changed where ``where`` (broadcastable to it) is True: 0/1 values flipped, other values moved
    by noise of one standard deviation of ``x``."""
    binary = bool(((x == 0) | (x == 1)).all())
    if binary:
        new = 1 - x
    else:
        std = float(x.float().std()) if x.numel() > 1 else 1.0
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float32).to(x.device, x.dtype)
        new = x + noise * (std if std > 0 else 1.0)
    return torch.where(where.to(x.device), new, x)


def raster_self_read(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, generator: torch.Generator,
                     half: bool = False) -> Optional[RasterResult]:
    """Run the three perturbation tests on ``x`` (``(B, C, H, W)`` or ``(B, C, L)``, float) through ``model``,
    whose output must have ``x``'s shape; None when it does not or ``x`` has too few positions."""
    if not x.is_floating_point() or x.dim() not in (3, 4):
        return None
    spatial = tuple(int(s) for s in x.shape[2:])
    positions = 1
    for s in spatial:
        positions *= s
    if positions < 3:
        return None
    base = model(x)
    if not isinstance(base, torch.Tensor) or base.shape != x.shape:
        return None
    b, c = int(x.shape[0]), int(x.shape[1])
    # The centre pixel: context before it in its row and in the rows above, positions after it to perturb.
    p = (spatial[0] // 2) * spatial[1] + spatial[1] // 2 if len(spatial) == 2 else positions // 2
    where_p = tuple(divmod(p, spatial[-1])) if len(spatial) == 2 else (p,)
    flat_x, flat_base = x.reshape(b, c, positions), base.reshape(b, c, positions)
    scale = float(flat_base.abs().max())
    index = torch.arange(positions)

    def run(mask: torch.Tensor) -> torch.Tensor:
        new = _perturb(flat_x, mask, generator).reshape(x.shape)
        return model(new).reshape(b, c, positions)

    past = (flat_base[:, :, : p + 1] - run((index > p).view(1, 1, -1))[:, :, : p + 1]).abs().max()
    if depends(float(past), scale, half):
        return RasterResult("not-causal", where_p, positions, float(past), scale)
    context = (flat_base[:, :, p] - run((index < p).view(1, 1, -1))[:, :, p]).abs().max()
    if not depends(float(context), scale, half):
        return RasterResult("no-context", where_p, positions, float(context), scale)
    for ch in range(min(c, MAX_CHANNELS)):
        mask = torch.zeros(1, c, positions, dtype=torch.bool)
        mask[0, ch, p] = True
        own = (flat_base[:, ch, p] - run(mask)[:, ch, p]).abs().max()
        if depends(float(own), scale, half):
            return RasterResult("reads-own", where_p, positions, float(own), scale, ch)
    return RasterResult("causal", where_p, positions, 0.0, scale)

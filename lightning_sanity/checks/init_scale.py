"""The scale a default initialisation gives a layer, for ``weight-growth``: growth is judged from the larger of a
layer's first norm and that scale.

A layer that starts near zero (a bias drawn close to 0, a zero-initialised output layer, LoRA's B) and grows to the
size an ordinary initialisation of its shape would have given it has not diverged: it has merely learned. PyTorch's
default for ``Linear`` and ``Conv`` layers (Kaiming-uniform with ``a = sqrt(5)``, biases alike) draws every element
from ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: an RMS of ``1/sqrt(3 fan_in)``. A layer of ``n`` elements then has
a norm about ``sqrt(n / (3 fan_in))``; growth is measured from the larger of that and the layer's first norm, so
a 1-element bias of a ``Linear(64, 1)`` going from 0.003 to 0.066 (22x its start, but under its default scale 0.072)
is not growth, while weights blowing up tenfold past any ordinary scale still are. ``nn.Embedding``'s default
draws from ``N(0, 1)``: a norm of ``sqrt(n)``. Embedding tables, VQ-VAE codebooks and prototypes are often
initialised far below that (``std=0.02``, ``U(-1/K, 1/K)``) and pulled toward the scale of the vectors they are
compared with; growing toward unit-scale rows is learning, not divergence. A layer of gains and biases only (a
norm's affine, a layer scale starting at 1e-5 or 1e-6, a ReZero gate starting at 0) has unit scale per element
as its default (ones and zeros): growing toward it is learning too.

Example::

    >>> from torch import nn
    >>> m = nn.Sequential(nn.Linear(64, 1))
    >>> [round(v, 3) for v in default_init_norms(m, ["0"], [65]).tolist()]
    [0.582]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lightning_sanity.checks.layers import ROOT


def _fan_in(module: nn.Module) -> int:
    """The fan-in of the module's first parameter of 2 or more dimensions (a parametrised weight's ``original``
    included), or 0 when it has none."""
    for p in module.parameters():
        if p.dim() >= 2:
            return int(math.prod(p.shape[1:]))
    return 0


def default_init_norms(model: nn.Module, names: Sequence[str], numels: Sequence[int]) -> torch.Tensor:
    """Per layer (``names`` as in :class:`~lightning_sanity.checks.layers.LayerMap`), the norm a default
    initialisation of its shape has: ``sqrt(numel / (3 fan_in))``, ``sqrt(numel)`` for an embedding and for a layer without a weight matrix (gains,
    biases, layer scales: unit scale per element). Reads shapes only."""
    modules = dict(model.named_modules())
    norms = []
    for name, numel in zip(names, numels):
        module = modules.get("" if name == ROOT else name)
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            norms.append(math.sqrt(numel))  # N(0, 1) per element
            continue
        fan_in = _fan_in(module) if isinstance(module, nn.Module) else 0
        # Without a weight matrix the layer's parameters are gains and biases, whose defaults are ones and zeros:
        # unit scale per element (a layer scale grown from 1e-5 toward it, a ReZero gate from 0, has learned).
        norms.append(math.sqrt(numel / (3 * fan_in)) if fan_in > 0 else math.sqrt(numel))
    return torch.tensor(norms, dtype=torch.float64)


def beyond_init_scale(found: Sequence[tuple[int, float]], weight_sq: torch.Tensor, reference: torch.Tensor,
                      factor: float) -> list[tuple[int, float]]:
    """The ``(layer, growth)`` of ``found`` still grown more than ``factor`` times from the larger of their first
    norm and their default-initialisation ``reference``, with the growth measured from that larger start.

    >>> w = torch.tensor([[0.003 ** 2, 1.0], [0.066 ** 2, 400.0]])
    >>> beyond_init_scale([(0, 22.0), (1, 20.0)], w, torch.tensor([0.072, 0.5]), 10.0)
    [(1, 20.0)]
    """
    kept = []
    for layer, _ in found:
        first = max(math.sqrt(float(weight_sq[0, layer])), float(reference[layer]))
        last = math.sqrt(float(weight_sq[-1, layer]))
        if first > 0 and last > factor * first:
            kept.append((layer, last / first))
    return kept

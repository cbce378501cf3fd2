"""``update-ratio``'s too-large step seen once: an update at least as large as the weights that also blew the
layer's weights up past any ordinary scale, after which the ratio falls again.

A learning rate far too high (Adam at 0.256 where 1e-3 was meant: a linear-scaling rule without its ``/ 256``)
moves every weight by about ``lr`` on the first step, many times the weights' RMS; the weight norm jumps tenfold or
more within a few steps, and from then on ``||dw||/||w||`` looks ordinary because ``||w||`` is huge (the zoo's
SimCLR: 7.5x the weights on step 0, 0.67 on step 1, 0.03 by step 20). The repeated rule
(:func:`lightning_sanity.checks.norms.update_ratio_verdicts`) needs two such steps and misses it. One step suffices
here because a second, independent fact confirms it: the layer's weight norm went beyond ``factor`` (weight-growth's
10x) times the larger of its first norm and the norm a default initialisation of its shape has
(:mod:`lightning_sanity.checks.init_scale`). A layer initialised small (``std=1e-3``) whose first Adam steps are as
large as its weights grows to its ordinary scale, not tenfold past it; a single noisy step does not move the weights
tenfold.

Example::

    >>> u = torch.tensor([[49.0, 49.0], [0.25, 0.25]])
    >>> w = torch.tensor([[1.0, 1.0], [400.0, 1.0]])
    >>> blown_up_layers(u, w, torch.ones(2, 2, dtype=torch.bool), torch.tensor([1.0, 1.0]))
    [(0, 7.0)]
"""

from __future__ import annotations

import torch

from lightning_sanity.checks.norms import UPDATE_TOO_LARGE, WEIGHT_GROWTH_FACTOR


def blown_up_layers(update_sq: torch.Tensor, weight_sq: torch.Tensor, valid: torch.Tensor, reference: torch.Tensor,
                    *, too_large: float = UPDATE_TOO_LARGE, factor: float = WEIGHT_GROWTH_FACTOR,
                    zero_start: torch.Tensor | None = None) -> list[tuple[int, float]]:
    """``(layer, largest ratio)`` of the layers with one update of at least ``too_large`` times their weights whose
    weight norm (before an update, ``weight_sq``: ``[measurements, layers]``) went beyond ``factor`` times the
    larger of its first value and ``reference`` (the default-initialisation norm). Layers starting at exactly zero
    are never judged (their norm is how far the updates carried them)."""
    if update_sq.shape[0] == 0:
        return []
    ratio = update_sq.sqrt() / weight_sq.sqrt()
    ok = valid & torch.isfinite(ratio) & (weight_sq > 0)
    norms = torch.where(torch.isfinite(weight_sq), weight_sq, torch.zeros_like(weight_sq)).sqrt()
    start = torch.maximum(norms[0], reference.to(norms.dtype))
    zero = weight_sq[0] == 0 if zero_start is None else zero_start.reshape(-1)
    once = (ok & (ratio >= too_large)).any(0) & ~zero & (start > 0)
    blown = once & (norms.amax(0) > factor * start)
    return [(layer, float(f"{ratio[ok[:, layer], layer].max().item():.6g}"))
            for layer in blown.nonzero().flatten().tolist()]

"""Optimizers that never step: the parameters only they hold get gradients that nothing ever applies.

Under manual optimization the user calls each ``opt.step()``; a copy-pasted phase that steps the wrong optimizer
(a GAN's generator phase ending in ``opt_d.step()``) leaves the other one idle for the whole run. Its parameters
still receive gradients (their loss is backpropagated every step) but never move: an update ratio of exactly zero
on every step. A parameter that a stepping optimizer also holds does move, so only parameters held by idle
optimizers alone count.

Example::

    >>> import torch
    >>> g, d = torch.nn.Linear(2, 2), torch.nn.Linear(2, 1)
    >>> opt_g, opt_d = torch.optim.SGD(g.parameters(), lr=0.1), torch.optim.SGD(d.parameters(), lr=0.1)
    >>> [(i, len(params)) for i, params in idle_parameters([opt_g, opt_d], {id(opt_d): 40})]
    [(0, 2)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def idle_parameters(optimizers: Sequence[torch.optim.Optimizer], steps: Mapping[int, int]
                    ) -> list[tuple[int, list[torch.Tensor]]]:
    """Per optimizer that never stepped (``steps[id(opt)]`` missing or 0), its trainable parameters that no
    stepping optimizer holds, as ``(index in optimizers, parameters)``; optimizers left with none are omitted."""
    moved = {id(p) for opt in optimizers if steps.get(id(opt), 0) > 0
             for group in opt.param_groups for p in group["params"]}
    out = []
    for i, opt in enumerate(optimizers):
        if steps.get(id(opt), 0) > 0:
            continue
        params = [p for group in opt.param_groups for p in group["params"]
                  if getattr(p, "requires_grad", False) and id(p) not in moved]
        if params:
            out.append((i, params))
    return out

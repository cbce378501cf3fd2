"""Is the training loss made of recognised loss calls alone, or does it hold terms of its own?

A loss that is a recognised non-negative loss (cross-entropy, MSE, ...) or a sum of them cannot go below zero
unless its sign is flipped. A loss with terms of its own that reach the parameters by another way can:
Kendall et al.'s uncertainty weighting ``exp(-s) * L + s`` with a learned ``s``, a learned log-variance added by
hand, an entropy bonus. :func:`loss_has_own_terms` walks the first step's autograd graph back from the training
loss, stopping at the outputs of the recognised loss calls, and says whether a parameter is reached by any other
path. Read-only: the graph's nodes are only visited, nothing is computed or kept.

Example::

    >>> import torch, torch.nn.functional as F
    >>> w, s = torch.nn.Parameter(torch.ones(3, 2)), torch.nn.Parameter(torch.zeros(()))
    >>> ce = F.cross_entropy(torch.ones(4, 3) @ w, torch.zeros(4, dtype=torch.long))
    >>> loss_has_own_terms(-ce, [ce.grad_fn])                 # a sign flip adds no term of its own
    False
    >>> loss_has_own_terms(torch.exp(-s) * ce + s, [ce.grad_fn])  # uncertainty weighting does
    True
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import torch

#: Nodes visited before giving up (None: unknown). A model's first-step graph is a few nodes per layer; this
#: bounds the one-off walk to well under a second on a graph far larger than any model's.
MAX_NODES = 200_000


def loss_has_own_terms(loss: Any, stops: Iterable[Any]) -> Optional[bool]:
    """Whether ``loss``'s autograd graph reaches a leaf that requires grad other than through ``stops``.

    Args:
        loss: the training loss tensor, before backward.
        stops: the ``grad_fn`` nodes of the recognised loss calls' outputs.

    Returns:
        True when some path from the loss reaches a parameter (an ``AccumulateGrad`` node) without passing a stop;
        False when every such path goes through a stop (the loss is a function of the recognised losses and of
        constants); None when the loss has no graph or the graph is too large to walk.
    """
    if not isinstance(loss, torch.Tensor) or loss.grad_fn is None:
        return None
    stop_ids = {id(node) for node in stops if node is not None}
    seen: set[int] = set()
    todo = [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen or id(node) in stop_ids:
            continue
        seen.add(id(node))
        if len(seen) > MAX_NODES:
            return None
        if type(node).__name__ == "AccumulateGrad":
            return True
        todo.extend(fn for fn, _ in getattr(node, "next_functions", ()))
    return False

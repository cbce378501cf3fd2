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

:func:`is_log_probability` answers another question about the same graph: is the loss, by construction, a
log-probability of the targets (a log-softmax followed only by selections, sums and means, no minus sign)? Such a
loss is never above zero, and minimising it pushes the probability of the right answer down: the negative
log-likelihood with its minus sign forgotten.

    >>> logits = torch.ones(4, 3) @ w
    >>> is_log_probability(F.log_softmax(logits, -1).gather(1, torch.zeros(4, 1, dtype=torch.long)).mean())
    True
    >>> is_log_probability(-F.log_softmax(logits, -1)[:, 0].mean())
    False
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Optional

import torch

#: Nodes visited before giving up (None: unknown). A model's first-step graph is a few nodes per layer; this
#: bounds the one-off walk to well under a second on a graph far larger than any model's.
MAX_NODES = 200_000


class GraphTooLarge(Exception):
    """The walk passed :data:`MAX_NODES` nodes."""


def graph_nodes(loss: torch.Tensor, stops: Iterable[Any] = ()) -> Iterator[Any]:
    """Each node of ``loss``'s autograd graph once, depth first, not past the nodes in ``stops``; raises
    :class:`GraphTooLarge` past :data:`MAX_NODES`. Read-only: the nodes are only visited."""
    stop_ids = {id(node) for node in stops if node is not None}
    seen: set[int] = set()
    todo = [loss.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or id(node) in seen or id(node) in stop_ids:
            continue
        seen.add(id(node))
        if len(seen) > MAX_NODES:
            raise GraphTooLarge
        yield node
        todo.extend(fn for fn, _ in getattr(node, "next_functions", ()))


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
    try:
        return any(type(node).__name__ == "AccumulateGrad" for node in graph_nodes(loss, stops))
    except GraphTooLarge:
        return None


#: Nodes that keep a log-probability's sign: selections, reshapes, sums and means of it.
_SIGN_KEEPING = ("MeanBackward", "SumBackward", "GatherBackward", "IndexBackward", "SelectBackward", "SliceBackward",
                 "ViewBackward", "ReshapeAliasBackward", "UnsafeViewBackward", "SqueezeBackward", "UnsqueezeBackward",
                 "ExpandBackward", "CloneBackward", "ToCopyBackward", "TBackward", "PermuteBackward",
                 "TransposeBackward")
#: Nodes whose output is a log-probability (log_softmax, logsigmoid).
_LOG_PROBABILITY = ("LogSoftmaxBackward", "LogSigmoidBackward")
#: Nodes whose output is a probability: ``torch.log`` of one is a log-probability.
_PROBABILITY = ("SoftmaxBackward", "SigmoidBackward")


def _kind(node: Any) -> str:
    return type(node).__name__.rstrip("0123456789")


def _selects_or_scales(node: Any) -> bool:
    """A Mul by a positive number or a 0/1 mask (one-hot targets, a padding mask), or a Div by positive numbers.

    A Mul by other non-negative weights is not counted: ``(cost * log_prob).mean()`` is a policy gradient with
    costs, minimised on purpose."""
    kind = _kind(node)
    if kind not in ("MulBackward", "DivBackward"):
        return False
    other = getattr(node, "_saved_other", None)
    if isinstance(other, (int, float)):
        return other > 0
    if isinstance(other, torch.Tensor) and not other.requires_grad and other.numel() <= 1 << 20:
        if kind == "DivBackward":
            return bool((other > 0).all())
        return bool(((other == 0) | (other == 1)).all())
    return False


def is_log_probability(loss: Any) -> bool:
    """Whether ``loss`` is, by its autograd graph, a log-probability kept as it is: a ``log_softmax`` /
    ``logsigmoid`` (or ``torch.log`` of a softmax or sigmoid) followed only by selections, reshapes, sums, means and
    masks and positive scalings. Reads the first step's graph once (one small host read per constant)."""
    if not isinstance(loss, torch.Tensor) or loss.grad_fn is None:
        return False
    node = loss.grad_fn
    for _ in range(64):
        kind = _kind(node)
        if kind in _LOG_PROBABILITY:
            return True
        inputs = [fn for fn, _ in getattr(node, "next_functions", ()) if fn is not None]
        if len(inputs) != 1:
            return False
        if kind == "LogBackward":
            return _kind(inputs[0]) in _PROBABILITY
        if kind not in _SIGN_KEEPING and not _selects_or_scales(node):
            return False
        node = inputs[0]
    return False

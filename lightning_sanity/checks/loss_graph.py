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


def _inputs(node: Any) -> list[Any]:
    """The autograd nodes ``node`` takes its inputs from."""
    return [fn for fn, _ in getattr(node, "next_functions", ()) if fn is not None]


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
        inputs = _inputs(node)
        if len(inputs) != 1:
            return False
        if kind == "LogBackward":
            return _kind(inputs[0]) in _PROBABILITY
        if kind not in _SIGN_KEEPING and not _selects_or_scales(node):
            return False
        node = inputs[0]
    return False


#: Nodes a cosine head's logits pass between the similarity and the loss: scales, margins, clamps, selections.
_COSINE_PASS = ("MulBackward", "DivBackward", "AddBackward", "SubBackward", "WhereBackward", "ClampBackward",
                "ClampMinBackward", "ClampMaxBackward", "AcosBackward", "CosBackward", "NegBackward", "IndexPutBackward",
                "ScatterBackward", "CatBackward", "StackBackward", "ExpBackward") + _SIGN_KEEPING
#: Matrix products: the similarity itself.
_PRODUCTS = ("MmBackward", "BmmBackward", "AddmmBackward", "LinearBackward", "MvBackward", "DotBackward")
#: Nodes between a tensor and its L2 normalisation (``x / x.norm(dim).clamp_min(eps)``, ``F.normalize``).
_NORM_PATH = ("ExpandBackward", "ClampMinBackward", "ClampBackward", "CloneBackward", "UnsqueezeBackward",
              "AddBackward", "MaximumBackward")
_NORMS = ("LinalgVectorNormBackward", "NormBackward")


def _is_normalised(node: Any) -> bool:
    """Whether ``node`` yields a tensor divided by its own vector norm (through views, transposes, copies)."""
    for _ in range(8):
        kind = _kind(node)
        if kind == "DivBackward":
            todo = _inputs(node)[1:2]
            for _ in range(6):
                if not todo:
                    return False
                if _kind(todo[0]) in _NORMS:
                    return True
                if _kind(todo[0]) not in _NORM_PATH:
                    return False
                todo = _inputs(todo[0])[:1]
            return False
        inputs = _inputs(node)
        if kind not in _SIGN_KEEPING or len(inputs) != 1:
            return False
        node = inputs[0]
    return False


def is_scaled_cosine(logits: Any, limit: int = 64) -> bool:
    """Whether ``logits`` are, by their autograd graph, a scaled cosine similarity: every matrix product the graph
    reaches before any other layer multiplies two L2-normalised tensors (``s * F.linear(F.normalize(x),
    F.normalize(W))``, plus a margin on the target class for ArcFace / CosFace). Such logits lie in ``[-s, s]``
    whatever the initialisation, so the first loss is set by the scale ``s``, not by the weights.

    >>> import torch.nn.functional as F
    >>> w, x = torch.nn.Parameter(torch.randn(5, 4)), torch.randn(3, 4, requires_grad=True)
    >>> is_scaled_cosine(30 * F.linear(F.normalize(x), F.normalize(w))), is_scaled_cosine(F.linear(x, w))
    (True, False)
    """
    if not isinstance(logits, torch.Tensor) or logits.grad_fn is None:
        return False
    todo, seen, products = [logits.grad_fn], set(), 0
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > limit:
            return False
        kind = _kind(node)
        if kind in _PRODUCTS:
            operands = _inputs(node)
            if kind == "AddmmBackward" or len(operands) != 2 or not all(_is_normalised(n) for n in operands):
                return False  # a bias, or an operand that is not normalised: an ordinary linear head
            products += 1
        elif kind == "MulBackward" and len(_inputs(node)) == 2 and all(_is_normalised(n) for n in _inputs(node)):
            products += 1  # F.cosine_similarity: an element-wise product of normalised tensors, then a sum
        elif kind in ("AccumulateGrad",):
            continue  # a learned scale or margin
        elif kind in _COSINE_PASS or kind.startswith("SumBackward"):
            todo.extend(_inputs(node))
        else:
            return False
    return products > 0

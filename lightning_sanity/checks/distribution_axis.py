"""Which axis of a ``kl_div`` target holds the distributions, and what ``reduction="batchmean"`` counts.

``kl_div`` is element-wise: it does not know which axis the user normalised. Its best constant and its uniform
reference are sums over a distribution, so the baseline needs that axis. A target whose rows sum to 1 along one
axis says where its distributions are (``softmax(t, dim=-1)`` of a ``(B, T, V)`` teacher: the last axis). When the
target is a distribution along no axis of a tensor with three or more dimensions, the axis is unknown and so is
the baseline.

``reduction="batchmean"`` divides the sum by ``input.size(0)`` only: over ``(B, T, V)`` it is a per-sequence sum,
``T`` distributions per batch element, and the expected value per distribution scales by ``T``
(:func:`rows_per_batch_element`).

:func:`positions_instead_of_tokens`: a token model's ``(B, T, V)`` prediction whose last axis is the vocabulary of
the input tokens, fed to ``kl_div`` as distributions along the T positions (``softmax(logits, dim=1)``).

Example::

    >>> import torch
    >>> t = torch.softmax(torch.randn(2, 5, 3), dim=-1)
    >>> distribution_axis(t), distribution_axis(torch.softmax(torch.randn(2, 5, 3), dim=1))
    (2, 1)
    >>> rows_per_batch_element(t, 2)
    5.0
"""

from __future__ import annotations

from typing import Optional

import torch


def _sums_to_one(p: torch.Tensor, axis: int) -> bool:
    sums = p.sum(axis)
    return bool(((sums - 1).abs() <= 1e-3 * max(1.0, p.shape[axis] ** 0.5)).all())


def distribution_axis(target: torch.Tensor, log_target: bool = False) -> Optional[int]:
    """The axis of ``target`` (probabilities, or log-probabilities with ``log_target``) that holds distributions.

    0 for a 1-D target, 1 for a 2-D one (rows are samples). From three dimensions on: the last axis when the target
    sums to 1 along it, else the one other axis (not the batch axis 0) along which it does; None when none or
    several do (the axis, and so the baseline, is unknown).
    """
    if target.dim() <= 1:
        return 0
    if target.dim() == 2:
        return 1
    p = target.detach().double()
    p = p.exp() if log_target else p
    if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
        return None
    last = p.dim() - 1
    if _sums_to_one(p, last):
        return last
    axes = [a for a in range(1, last) if _sums_to_one(p, a)]
    return axes[0] if len(axes) == 1 else None


def distribution_rows(target: torch.Tensor, axis: int) -> torch.Tensor:
    """``target`` as ``(rows, C)`` with the distribution axis last."""
    t = target.detach()
    if t.dim() <= 1:
        return t.double().reshape(1, -1)
    return t.movedim(axis, -1).reshape(-1, t.shape[axis]).double()


def rows_per_batch_element(target: torch.Tensor, axis: int) -> float:
    """How many distributions ``reduction="batchmean"`` sums per unit of ``input.size(0)``: 1 for ``(B, C)``,
    ``T`` for ``(B, T, V)``, ``1 / C`` for an unbatched ``(C,)``."""
    if target.numel() == 0:
        return 0.0
    return target.numel() / (target.shape[axis] * target.shape[0])


def _log_sums_to_one(logp: torch.Tensor, axis: int) -> bool:
    return bool(((torch.logsumexp(logp, axis)).abs() <= 1e-3 * max(1.0, logp.shape[axis] ** 0.5)).all())


def positions_instead_of_tokens(input: torch.Tensor, target: torch.Tensor, log_target: bool,
                                tokens: Optional[torch.Tensor], vocab_sizes: set[int]) -> Optional[dict]:
    """Figures when ``kl_div``'s distributions run along the positions of a token sequence instead of its vocabulary,
    else None.

    The evidence, all of it needed: the batch's input is token ids ``(B, T)``; the prediction is ``(B, T, V)`` with
    ``V`` the size of one of the model's embedding tables and above every input token (the last axis can name every
    token the model reads: it is the vocabulary); input (as log-probabilities) and target are distributions along
    axis 1, the T positions, and not along the vocabulary. A pointer over positions (extractive QA's ``(B, T, 2)``
    start/end scores) has no vocabulary on its last axis, and a segmentation teacher has no token input: both stay
    silent.

    >>> ids = torch.randint(0, 9, (2, 5))
    >>> logits = torch.randn(2, 5, 10)
    >>> p = positions_instead_of_tokens(logits.log_softmax(1), logits.softmax(1), False, ids, {10})
    >>> p["axis"], p["positions"], p["vocab"]
    (1, 5, 10)
    >>> positions_instead_of_tokens(logits.log_softmax(-1), logits.softmax(-1), False, ids, {10}) is None
    True
    """
    if (tokens is None or tokens.is_floating_point() or tokens.is_complex() or tokens.dim() != 2
            or input.dim() != 3 or tuple(input.shape[:2]) != tuple(tokens.shape) or input.shape != target.shape
            or int(input.shape[-1]) not in vocab_sizes or tokens.numel() == 0 or input.shape[1] < 2):
        return None
    if int(tokens.max()) >= input.shape[-1] or int(tokens.min()) < 0:
        return None
    logp = input.detach().double()
    if not bool(torch.isfinite(logp).all()) or not _log_sums_to_one(logp, 1) or _log_sums_to_one(logp, 2):
        return None
    if distribution_axis(target, log_target) != 1:
        return None
    return {"axis": 1, "positions": int(input.shape[1]), "vocab": int(input.shape[-1]),
            "shape": [int(v) for v in input.shape]}

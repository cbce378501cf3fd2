"""What ``ctc_loss`` is fed: the pure functions behind its ``loss-input`` findings.

``F.ctc_loss`` (and ``nn.CTCLoss``) reads its first argument as log-probabilities over the classes, ``(T, N, C)``
(or ``(T, C)`` unbatched): every frame's row must satisfy ``logsumexp == 0``, the output of ``log_softmax``. It never
checks: raw logits are accepted and the loss is then unbounded below (it falls by inflating the scores on the
target's paths, not by discriminating). Its targets are class indices that must never be the blank.

No input-independent baseline is known for CTC (the best constant frame distribution depends on every target's
length and the number of its alignments), so ``initial-loss`` says so instead of guessing.

Example::

    >>> import torch
    >>> raw = torch.randn(50, 4, 13)
    >>> ctc_input_problem(raw)["kind"], ctc_input_problem(raw.log_softmax(-1)) is None
    ('logits', True)
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

#: How the rows of a ``ctc_loss`` input may stray from ``logsumexp == 0`` and still be log-probabilities, in units
#: of the dtype's machine epsilon times ``ln C`` (rounding of a ``log_softmax`` computed in that dtype), with a
#: floor of 1e-3 nats: a raw logit row is off by about ``ln C`` (2.6 for 13 symbols), orders of magnitude more.
EPS_UNITS = 16.0
FLOOR = 1e-3


def _tolerance(dtype: torch.dtype, classes: int) -> float:
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return max(FLOOR, EPS_UNITS * eps) * max(1.0, math.log(max(classes, 2)))


def ctc_input_problem(log_probs: torch.Tensor) -> Optional[dict[str, Any]]:
    """Figures when ``ctc_loss``'s input is not log-probabilities over its last (class) axis, else None.

    ``kind`` is ``"probabilities"`` (rows in [0, 1] that sum to 1: a softmax) or ``"logits"`` (rows whose
    ``logsumexp`` is far from 0). Every row counts, padded frames too: ``log_softmax`` makes all of them sum to one.

    >>> ctc_input_problem(torch.randn(20, 2, 5).softmax(-1))["kind"]
    'probabilities'
    """
    if not isinstance(log_probs, torch.Tensor) or log_probs.dim() not in (2, 3) or log_probs.numel() == 0:
        return None
    if not log_probs.is_floating_point():
        return None
    classes = int(log_probs.shape[-1])
    rows = log_probs.detach().float().reshape(-1, classes)
    rows = rows[torch.isfinite(rows).all(-1)]
    if rows.numel() == 0 or classes < 2:
        return None
    lse = torch.logsumexp(rows, -1).abs()
    worst, median = float(lse.max()), float(lse.median())
    if worst <= _tolerance(log_probs.dtype, classes):
        return None
    probabilities = bool(((rows >= -1e-3) & (rows <= 1 + 1e-3)).all()) and bool(
        ((rows.sum(-1) - 1).abs() <= 1e-3 * classes).all())
    return {"kind": "probabilities" if probabilities else "logits", "max_abs_logsumexp": worst,
            "median_abs_logsumexp": median, "classes": classes, "frames": int(rows.shape[0])}


def blank_in_targets(targets: torch.Tensor, target_lengths: Any, blank: int) -> Optional[dict[str, Any]]:
    """Figures when a target symbol (within its length) equals the blank index, else None.

    Targets come ``(N, S)`` padded (only the first ``target_lengths[n]`` of row n are symbols; the padding may be
    anything, the blank included) or 1-D concatenated (every entry is a symbol). A target that holds the blank asks
    the model to emit the symbol CTC reserves for "nothing here": the label and the blank index disagree.

    >>> blank_in_targets(torch.tensor([[3, 0, 2], [1, 2, 0]]), torch.tensor([3, 2]), 0)["count"]
    1
    >>> blank_in_targets(torch.tensor([[3, 1, 2], [1, 2, 0]]), torch.tensor([3, 2]), 0) is None
    True
    """
    if not isinstance(targets, torch.Tensor) or targets.numel() == 0 or targets.is_floating_point():
        return None
    t = targets.detach()
    if t.dim() == 2:
        lengths = torch.as_tensor(target_lengths, device=t.device).reshape(-1)
        if lengths.numel() != t.shape[0]:
            return None
        inside = torch.arange(t.shape[1], device=t.device).unsqueeze(0) < lengths.to(t.device).unsqueeze(1)
        symbols = t[inside]
    elif t.dim() == 1:
        symbols = t
    else:
        return None
    count = int((symbols == blank).sum())
    if count == 0:
        return None
    return {"count": count, "symbols": int(symbols.numel()), "blank": int(blank)}

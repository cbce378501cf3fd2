"""``label-distribution``'s judgement of targets the training step makes itself for in-batch logits.

Contrastive losses (InfoNCE, SimCLR's NT-Xent, CLIP) score every row of the batch against every candidate of the
same batch: the logits are square, ``(N, N)`` (or ``(2N, 2N)`` with both views), and each row's positive is its own
pair, so the targets are ``torch.arange(N)`` (or a shift of it), one distinct class per row. A target the step
built as a constant (``torch.zeros(N)``, copied from MoCo, whose logits ``[positive | queue]`` are ``(N, 1 + K)``
and do put every positive in column 0) trains every row to match the same candidate: the embeddings collapse and
the loss ends at ln N. The batch's own labels say nothing here (the step never reads them), so the loss call's
target is judged instead.

Example::

    >>> import torch
    >>> constant_in_batch_target(torch.zeros(16, 16), torch.zeros(16, dtype=torch.long))
    {'rows': 16, 'candidates': 16, 'target': 0}
    >>> constant_in_batch_target(torch.zeros(16, 16), torch.arange(16)) is None
    True
    >>> constant_in_batch_target(torch.zeros(16, 1 + 4096), torch.zeros(16, dtype=torch.long)) is None  # MoCo
    True
"""

from __future__ import annotations

from typing import Any, Optional

import torch

#: At least this many rows before a constant target on a square head is judged. Were the targets ordinary labels
#: over the N classes, all N equal has probability N^(1 - N): below 1e-6 from 8 rows on (8^-7 = 5e-7), so a
#: constant there is structural (the code makes it), not chance; smaller batches say too little.
MIN_ROWS = 8


def constant_in_batch_target(logits: torch.Tensor, target: torch.Tensor) -> Optional[dict[str, Any]]:
    """``{rows, candidates, target}`` when ``target`` (class indices) is one constant while ``logits`` is square
    (as many candidates as rows: in-batch logits) with at least :data:`MIN_ROWS` rows; else None.

    Rectangular logits (a head of fixed classes, MoCo's ``[positive | queue]``) are never judged: a constant class
    there can be meant.
    """
    if torch.is_floating_point(target) or logits.dim() != 2 or target.dim() != 1:
        return None
    rows, candidates = int(logits.shape[0]), int(logits.shape[1])
    if rows != candidates or rows < MIN_ROWS or target.numel() != rows:
        return None
    first = target[0]
    if not bool((target == first).all()):
        return None
    return {"rows": rows, "candidates": candidates, "target": int(first)}

"""A label that is the last real token of its own input: pure functions for ``target-leakage``; the glue is
:mod:`lightning_sanity.callbacks._last_token`.

A next-item model (a session recommender, a next-event classifier) cuts its label from the sequence, ``label =
seq[b, lengths - 1]``, and must then read the sequence only up to the element before it. When the whole sequence
is fed, the label is the input's last real token. The data pattern alone proves nothing: a healthy model is given
the same padded tensor with ``lengths - 1``. The glue confirms it by changing only that token in the model call.

Why only the last real token: a label at a fixed place from the start (recall the first token) or a few tokens
before the end (an n-back recall) is a memory task a synthetic benchmark poses on purpose; echoing the last element
the model reads is no task. Sequences of one length are left out (the end is then a fixed place from the start,
as in :func:`lightning_sanity.checks.target_inputs.label_tokens`), and so are labels of few values (a class token
at the end is :func:`~lightning_sanity.checks.target_inputs.label_tokens`' case).

Example::

    >>> import torch
    >>> seq = torch.tensor([[5, 7, 9, 0], [4, 8, 0, 0], [6, 3, 2, 1]] * 6) + torch.arange(18)[:, None] * 10
    >>> seq = torch.where(torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]] * 6).bool(), seq, 0)
    >>> last = last_token_positions(seq, seq[torch.arange(18), torch.tensor([2, 1, 3] * 6)])
    >>> last.tolist()[:3], last_token_positions(seq, seq[:, 0])
    ([2, 1, 3], None)
"""

from __future__ import annotations

from typing import Optional

import torch

#: Distinct labels needed: with this many, a label equal to the last token in every sample is no class marker.
MIN_LABELS = 8
#: Distinct samples needed (repeated samples are no new evidence).
MIN_SAMPLES = 16


def real_positions(ids: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(B, T)`` bool: the positions before each row's trailing padding (``mask`` when given, else the run of the
    token that ends at least half the rows, as a batch padded to its longest sequence has)."""
    if isinstance(mask, torch.Tensor) and mask.shape == ids.shape:
        return mask.bool()
    values, counts = torch.unique(ids[:, -1], return_counts=True)
    if int(counts.max()) * 2 < ids.shape[0]:
        return torch.ones_like(ids, dtype=torch.bool)
    pad = values[counts.argmax()]
    return ~(ids == pad).flip(1).long().cumprod(1).flip(1).bool()


def last_token_positions(ids: torch.Tensor, label: torch.Tensor,
                         mask: Optional[torch.Tensor] = None) -> Optional[torch.Tensor]:
    """The ``(B,)`` positions of each row's last real token when the integer ``label`` (``(B,)``; negative: ignored)
    equals that token in every labelled row, with at least :data:`MIN_LABELS` distinct labels and
    :data:`MIN_SAMPLES` distinct rows, and the rows' lengths vary; else None."""
    if (ids.dim() != 2 or ids.is_floating_point() or ids.is_complex() or label.dim() != 1
            or label.shape[0] != ids.shape[0] or label.is_floating_point() or ids.shape[1] < 2):
        return None
    ids, label = ids.detach().cpu().long(), label.detach().cpu().long()
    real = real_positions(ids, mask.detach().cpu() if isinstance(mask, torch.Tensor) else None)
    lengths = real.long().sum(1)
    if bool((lengths == 0).any()) or int(torch.unique(lengths).numel()) < 2:
        return None
    last = torch.where(real, torch.arange(ids.shape[1]), torch.full_like(ids, -1)).amax(1)
    used = label >= 0
    at_last = ids.gather(1, last[:, None])[:, 0]
    if not bool((at_last[used] == label[used]).all()):
        return None
    if int(torch.unique(label[used]).numel()) < MIN_LABELS or len(torch.unique(ids[used], dim=0)) < MIN_SAMPLES:
        return None
    return last


def other_tokens(ids: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, real: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
    """For each ``(rows[i], cols[i])``, a real token of the batch other than the one there (the same device and
    dtype as ``ids``): another element the vocabulary holds, never the padding token."""
    tokens = torch.unique(ids.detach().cpu()[real.cpu()])
    old = ids.detach().cpu()[rows.cpu(), cols.cpu()]
    pick = torch.randint(0, tokens.numel(), old.shape, generator=generator)
    new = tokens[pick]
    new = torch.where(new == old, tokens[(pick + 1) % tokens.numel()], new)
    return new.to(ids.device, ids.dtype)

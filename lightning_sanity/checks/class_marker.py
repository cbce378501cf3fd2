"""``target-leakage``: one class's texts end with a token that no other class's text holds.

:func:`lightning_sanity.checks.target_inputs.label_tokens` finds a verbalised label, a token for *every* class at
the same place from the end. A leak can mark one class only: an event log not cut at the prediction date keeps the
event that defines the label (``cancel_subscription``) as the last event of every churner and of nobody else; a
"was flagged" record appended to positive cases only. What the run can know: the token is present in exactly the
samples of that class (all of them, no other), it sits at the same place from the end of each of them (appended
after the history, the last :data:`~lightning_sanity.checks.target_inputs.TAIL` tokens) while their lengths vary (so
the place is not one fixed position of a synthetic task), and chance cannot explain it: out of ``d`` distinct samples
(``d_c`` in the class) a shuffle of the labels makes one of the ``V`` tokens mark exactly that class with odds at
most ``C * V / binom(d, d_c)``, which must stay below :data:`~lightning_sanity.checks.target_inputs.CHANCE`.

A keyword classifier whose keyword sits anywhere in the text (a review that says "refund", an intent's verb) is the
task, not a leak, and is left alone: its keyword is not at one place from the end. What this cannot tell apart: a
task whose one class is *defined* by the text's last token (questions that end with "?", and nothing else does),
which looks the same in the batch.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(32) % 2
    >>> lengths = torch.randint(4, 10, (32,), generator=g)
    >>> ids = torch.randint(1, 50, (32, 11), generator=g)
    >>> ids[torch.arange(11) >= lengths[:, None]] = 0                     # padding
    >>> leak = ids.clone(); leak[y == 1, lengths[y == 1]] = 60            # "... cancel_subscription"
    >>> keyword = ids.clone(); keyword[y == 1, 1] = 60                    # a keyword early in the text
    >>> class_marker(ids, y), class_marker(leak, y), class_marker(keyword, y)
    (None, {1: 60}, None)
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from lightning_sanity.checks.leakage import log_partition_chance
from lightning_sanity.checks.target_inputs import CHANCE, TAIL, distinct_token_rows


def class_marker(ids: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Optional[dict[int, int]]:
    """``{class: token}`` for the classes of ``y`` (``(B,)``) whose samples of token inputs ``ids`` (``(B, T)``
    integers) all hold one token, no other class's sample holds it, and it sits at the same place from the end of
    every one of them while their lengths vary, beyond chance; None when no class has such a marker. ``mask``
    (``attention_mask``) leaves padding out; without it, a token ending most rows is taken for padding."""
    prepared = distinct_token_rows(ids, y, mask)
    if prepared is None:
        return None
    ids, classes, labels, per_class, tokens, index, keep = prepared
    d, vocab, kept = ids.shape[0], int(keep.sum()), tokens[keep]
    present = torch.zeros(d, tokens.numel()).scatter_(1, index, 1.0)[:, keep].bool()  # (d, V)
    real = ids >= 0
    length = real.sum(1)
    last = torch.where(real, torch.arange(ids.shape[1]), torch.full_like(ids, -1)).amax(1)
    found: dict[int, int] = {}
    for c, n in zip(labels.tolist(), per_class.tolist()):
        members = classes == c
        log_chance = math.log(labels.numel()) + math.log(vocab) + log_partition_chance([n, d - n])
        if log_chance >= math.log(CHANCE) or int(torch.unique(length[members]).numel()) < 2:
            continue
        exact = (present[members].all(0) & ~present[~members].any(0)).nonzero()[:, 0]
        if exact.numel() == 0:
            continue
        marks = set(kept[exact].tolist())
        for k in range(TAIL):
            at = last[members] - k
            if bool((at < 0).any()):
                break
            values = torch.unique(ids[members].gather(1, at[:, None])[:, 0]).tolist()
            if len(values) == 1 and values[0] in marks:
                found[int(c)] = int(values[0])
                break
    return found or None

"""An encoder-decoder whose encoder input ends with the answer: ``input_ids = source + [SEP] + target`` (the format of
a decoder-only fine-tuning script) beside ``labels = target + [EOS]``. The decoder learns to copy the answer through
cross-attention; at inference the encoder gets the source alone.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> src, tgt = torch.randint(5, 50, (16, 6), generator=g), torch.randint(5, 50, (16, 3), generator=g)
    >>> labels = torch.cat([tgt, torch.full((16, 1), 2)], 1)                  # target + [EOS]
    >>> answer_suffix(torch.cat([src, torch.full((16, 1), 3), tgt], 1), labels)  # source + [SEP] + target
    (16, 3)
    >>> answer_suffix(src, labels) is None
    True
"""

from __future__ import annotations

from typing import Optional

import torch

from lightning_sanity.checks.splits import right_padding

#: Rows needed: every input ending with its own answer after one shared token does not happen by chance on eight rows
#: of varied answers (a one-token answer and its separator are already two tokens matched).
MIN_ROWS = 8


def answer_suffix(ids: torch.Tensor, labels: torch.Tensor,
                  mask: Optional[torch.Tensor] = None) -> Optional[tuple[int, int]]:
    """``(rows, separator token)`` when every row of the encoder input ``ids`` (``(B, T)`` integers) ends with that
    row's answer, ``labels`` (``(B, S)``, ignored positions below 0) without or with its last token, after one
    token shared by all rows and a non-empty source; else None.

    Padding is left out: where ``mask`` is 0, else a right padding value of ``ids`` (which ``labels`` may use too).
    Answers must vary across rows: a fixed suffix is a prompt template, not an answer.
    """
    if ids.dim() != 2 or labels.dim() != 2 or ids.is_floating_point() or labels.is_floating_point() \
            or ids.shape[0] != labels.shape[0] or ids.shape[0] < MIN_ROWS:
        return None
    ids, labels = ids.detach().cpu(), labels.detach().cpu()
    if mask is not None and mask.shape == ids.shape:
        real = mask.detach().cpu().bool()
        pad = None
    else:
        pad = right_padding(ids)
        real = ids != pad if pad is not None else torch.ones_like(ids, dtype=torch.bool)
    seps, answers = set(), set()
    for row, keep, answer in zip(ids.tolist(), real.tolist(), labels.tolist()):
        tokens = [t for t, k in zip(row, keep) if k]
        answer = [t for t in answer if t >= 0 and t != pad]
        for cut in (answer, answer[:-1]):
            start = len(tokens) - len(cut)
            if cut and start >= 2 and tokens[start:] == cut:
                seps.add(tokens[start - 1])
                answers.add(tuple(cut))
                break
        else:
            return None
    if len(seps) != 1 or len(answers) < min(4, ids.shape[0] // 2):
        return None
    return int(ids.shape[0]), seps.pop()

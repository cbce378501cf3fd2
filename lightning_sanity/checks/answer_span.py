"""Where to cut a prompt-masked next-token batch for ``causal-leakage``: pure functions; the glue is
:mod:`lightning_sanity.callbacks._answer_causal`.

A decoder-only model fine-tuned on ``prompt + answer`` (supervised fine-tuning, a prefix LM) gets HuggingFace-style
``labels`` equal to ``input_ids`` on the answer and ignored (-100) on the prompt, and shifts them inside its loss.
Such a model may read the whole prompt (a prefix LM attends to it both ways), but the output at an answer position
must not read the later answer tokens it is trained to predict. The cut ``t`` is therefore taken inside every
compared row's supervised span, after its whole prompt: the inputs after ``t`` are answer tokens (or padding) only,
so a correct prefix LM or causal LM gives exactly the same outputs up to ``t`` whatever they are.

Example::

    >>> import torch
    >>> ids = torch.tensor([[5, 6, 7, 1, 7, 6, 5, 0], [5, 6, 1, 6, 5, 0, 0, 0]])
    >>> labels = torch.where(torch.tensor([[0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 1, 1, 0, 0, 0]]).bool(), ids, -100)
    >>> cut, rows = answer_cut(ids, labels)
    >>> cut, rows.tolist()
    (3, [False, True])
"""

from __future__ import annotations

from typing import Optional

import torch

from lightning_sanity.checks.leakage import IGNORED

#: Supervised tokens a row's span needs: with one, no later answer token exists to be read.
MIN_SPAN = 2


def answer_cut(x: torch.Tensor, y: torch.Tensor) -> Optional[tuple[int, torch.Tensor]]:
    """``(t, rows)`` for integer tokens ``x`` and labels ``y`` (``(B, T)``) when every supervised label (``>= 0``)
    equals the input at its position and, in every row with labels, they form one run of at least
    :data:`MIN_SPAN` after an unsupervised prompt: ``t`` the cut shared by most rows with ``first <= t < last``
    (``first``/``last`` the run's ends), ``rows`` the ``(B,)`` mask of those rows. None otherwise: scattered
    supervised positions are a masked LM's, labels that differ from the inputs another task's."""
    if (x.dim() != 2 or x.shape != y.shape or x.is_floating_point() or y.is_floating_point() or x.is_complex()
            or x.shape[1] < 3):
        return None
    x, y = x.detach().cpu(), y.detach().cpu()
    used = y >= IGNORED
    if not bool(used.any()) or not bool(((x == y) | ~used).all()) or int(torch.unique(x[used]).numel()) < 2:
        return None
    count = used.sum(1)
    labelled = count > 0
    positions = torch.arange(x.shape[1]).expand_as(x)
    first = torch.where(used, positions, x.shape[1]).amin(1)
    last = torch.where(used, positions, -1).amax(1)
    run = (last - first + 1 == count) & (count >= MIN_SPAN) & (first >= 1)
    if not bool(run[labelled].all()):
        return None
    cuts = torch.arange(x.shape[1])
    inside = labelled[None] & (first[None] <= cuts[:, None]) & (cuts[:, None] < last[None])  # (cuts, B)
    t = int(inside.sum(1).argmax())
    if not bool(inside[t].any()):
        return None
    return t, inside[t]

"""Losses whose target is a sign, fed 0/1 labels: the pure function behind that ``loss-input`` finding.

``cosine_embedding_loss``, ``hinge_embedding_loss``, ``margin_ranking_loss`` and ``soft_margin_loss`` read their
target as +1 ("similar", "ranked first", "positive") or -1, and none of them checks it. A 0/1 label (how
duplicate, match and preference datasets ship) silently breaks each one at every 0:

- ``cosine_embedding_loss``: a 0 matches neither branch, the pair adds exactly 0 loss and no gradient;
- ``margin_ranking_loss`` (``max(0, -y (x1 - x2) + margin)``) and ``soft_margin_loss`` (``log(1 + exp(-y x))``):
  a 0 makes the term a constant (``margin``, ``ln 2``) with no gradient;
- ``hinge_embedding_loss``: a 0 takes both branches (``x + max(0, margin - x)``), a term that is not the loss.

The "negative" half of the data then teaches nothing (or the wrong thing). The rule has no threshold: every target is
0 or 1, both occur, and no -1 does. Targets with a -1 (``2 * label - 1``, ``torch.sign(r1 - r2)`` with its ties at 0)
and all-ones targets (``torch.ones_like``) stay silent. ``multilabel_soft_margin_loss``, which does take 0/1, is not
one of them.

Example::

    >>> import torch
    >>> zero_one_targets(torch.tensor([1, 0, 0, 1]))["zeros"]
    2
    >>> zero_one_targets(torch.tensor([1., -1., 0., 1.])) is None, zero_one_targets(torch.ones(4)) is None
    (True, True)
"""

from __future__ import annotations

from typing import Any, Optional

import torch

#: What a 0 target does in each sign-target loss, said to the user.
ZERO_EFFECT = {
    "cosine_embedding_loss": "a target of 0 matches neither of its branches (1 similar, -1 dissimilar), so those "
                             "pairs add exactly 0 loss and no gradient: they are never pushed apart",
    "margin_ranking_loss": "a target of 0 makes max(0, -y (x1 - x2) + margin) the constant margin, with no gradient: "
                           "those pairs are never ranked",
    "soft_margin_loss": "a target of 0 makes log(1 + exp(-y x)) the constant ln 2, with no gradient: those samples "
                        "teach nothing",
    "hinge_embedding_loss": "a target of 0 takes both of its branches (x + max(0, margin - x)), so those samples "
                            "are pulled in and pushed out at once",
}


def zero_one_targets(target: Any) -> Optional[dict[str, Any]]:
    """Figures when a sign-target loss got 0/1 labels (every target 0 or 1, both present, no -1), else None."""
    if not isinstance(target, torch.Tensor) or target.numel() == 0 or target.is_complex():
        return None
    t = target.detach().reshape(-1)
    if t.dtype == torch.bool:
        t = t.long()
    zeros, ones = int((t == 0).sum()), int((t == 1).sum())
    if zeros == 0 or ones == 0 or zeros + ones != t.numel():
        return None
    return {"targets": int(t.numel()), "zeros": zeros, "ones": ones, "zero_share": zeros / t.numel()}

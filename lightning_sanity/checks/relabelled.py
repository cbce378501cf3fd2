"""Validation label columns that mean other things than in training: a multi-label (multi-hot) vocabulary built
again on the validation split, so that column k names another tag there. A pure function of the two splits'
per-column label counts, for ``val-divergence``.

The test needs no model: each column's positive rate is a property of the tag it names, so two splits of one data
set show the same rate per column up to sampling noise. A vocabulary rebuilt on one split keeps the *set* of
rates (the same tags are there) but deals them out to other columns. So it fires when, column by column, some
rate differs far beyond sampling noise, while the rates matched by rank (the largest with the largest, ...) all
agree within it: a relabelling, not a shift of the data.

Example::

    >>> import torch
    >>> rates = torch.tensor([0.5, 0.3, 0.1])
    >>> g = torch.Generator().manual_seed(0)
    >>> train = column_counts((torch.rand(2000, 3, generator=g) < rates).float())
    >>> val = (torch.rand(500, 3, generator=g) < rates).float()
    >>> judge_relabelled(train, column_counts(val)) is None
    True
    >>> judge_relabelled(train, column_counts(val[:, [2, 0, 1]])).kind
    'relabelled-columns'
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from lightning_sanity.checks.validation import Divergence

#: A column's validation rate this many standard errors away from its training rate cannot be sampling noise:
#: two-sided chance 6e-7 per column, below 1e-3 for up to a thousand columns (a Bonferroni bound).
Z_DIFFERENT = 5.0
#: Matched by rank, every column's rates agree within this many standard errors (each pair does by chance 99.7 %
#: of the time): the same rates, dealt out to other columns.
Z_SAME = 3.0
#: Multi-hot targets with more columns than this are not counted (a per-column sum per batch is cheap; a
#: 50k-token vocabulary of soft targets is not multi-label).
MAX_COLUMNS = 4096


def column_counts(y: torch.Tensor) -> Optional[torch.Tensor]:
    """``[rows, values other than 0 and 1, column sums...]`` of ``(N, K)`` float targets, on their device (no host
    sync), or None for targets that cannot be multi-hot.

    >>> column_counts(torch.tensor([[1.0, 0.0], [1.0, 1.0]])).tolist()
    [2.0, 0.0, 2.0, 1.0]
    """
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() != 2 or not 2 <= y.shape[1] <= MAX_COLUMNS:
        return None
    v = y.detach().double()
    other = ((v != 0) & (v != 1)).sum().double().reshape(1)
    return torch.cat([v.new_tensor([float(v.shape[0])]), other, v.sum(0)])


def merge_counts(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The counts of two sets of targets together (None when their column counts differ)."""
    if a is None or b is None:
        return a if b is None else b
    return a + b if a.shape == b.shape else None


def _z(p_train: torch.Tensor, p_val: torch.Tensor, n_train: float, n_val: float) -> torch.Tensor:
    pooled = (p_train * n_train + p_val * n_val) / (n_train + n_val)
    se = torch.sqrt(pooled * (1 - pooled) * (1 / n_train + 1 / n_val))
    return torch.where(se > 0, (p_val - p_train).abs() / torch.where(se > 0, se, torch.ones_like(se)),
                       torch.zeros_like(se))


def judge_relabelled(train: Optional[torch.Tensor], val: Optional[torch.Tensor]) -> Optional[Divergence]:
    """An error when the validation split's multi-hot columns carry the training split's rates in another order."""
    if train is None or val is None or train.shape != val.shape:
        return None
    train, val = train.cpu(), val.cpu()
    n_train, n_val = float(train[0]), float(val[0])
    if n_train < 2 or n_val < 2 or float(train[1]) or float(val[1]):
        return None  # not multi-hot in both splits
    p_train, p_val = train[2:] / n_train, val[2:] / n_val
    z = _z(p_train, p_val, n_train, n_val)
    t_order, v_order = p_train.argsort(), p_val.argsort()
    z_matched = _z(p_train[t_order], p_val[v_order], n_train, n_val)
    worst = int(z.argmax())
    if float(z[worst]) <= Z_DIFFERENT or float(z_matched.max()) > Z_SAME:
        return None
    # The validation column whose rate matches training column `worst`'s, by rank.
    partner = int(v_order[int((t_order == worst).nonzero()[0])])
    data = {"train_rates": [round(float(p), 4) for p in p_train[:50]],
            "val_rates": [round(float(p), 4) for p in p_val[:50]], "column": worst, "matching_val_column": partner,
            "z": float(z[worst]), "z_matched": float(z_matched.max()), "train_rows": n_train, "val_rows": n_val}
    return Divergence(
        "relabelled-columns", "error",
        f"Label column {worst} is positive in {float(p_train[worst]):.1%} of the training targets but "
        f"{float(p_val[worst]):.1%} of the validation targets ({float(z[worst]):.0f} standard errors apart), while "
        f"the two splits' column rates matched by rank all agree (within {float(z_matched.max()):.1f}; training "
        f"column {worst}'s rate is validation column {partner}'s): the validation columns name other labels than "
        "the training columns, as when the label vocabulary is built again on each split.",
        "Build the label vocabulary (`MultiLabelBinarizer`, a tag-to-index dict, `LabelEncoder`) once, on the "
        "training split or a fixed list, and encode every split with that same object; save it with the model.",
        data,
    )

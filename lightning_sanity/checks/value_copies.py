"""Another input of the batch that holds a regression target's values: the continuous-target half of
:mod:`lightning_sanity.checks.label_copies` (``target-leakage``).

A forecaster whose "known future covariates" are cut with the encoder's feature list holds, in one channel, the
very values it must predict at the same horizon steps (``FUTURE_COLS = PAST_COLS`` with ``sales`` in it). Class
labels are matched up to a relabelling; a continuous target has no classes, and any column of distinct values would
"relabel" it, so here only **equality** counts: a column of a batch tensor (the target's shape, or with a trailing
feature dimension) equal to the target at every position of distinct samples. The evidence is a permutation test
as for labels: shuffling the target's ``d`` values among those positions, one fixed column equals them all with
probability at most ``prod(d_v!) / d!`` (``d_v`` positions per distinct value), times the columns scanned; it must
stay below :data:`~lightning_sanity.checks.label_copies.CHANCE`. A target with few distinct values (a constant, a
few levels) is not evidence and stays silent.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.randn(8, 5, generator=g)
    >>> future = torch.stack([torch.randn(8, 5, generator=g), y], -1)    # covariates with the target in channel 1
    >>> [(c.name, c.column, c.how) for c in value_copies(y, {"future": future})]
    [('future', 1, 'equal values')]
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from lightning_sanity.checks.label_copies import (CHANCE, LabelCopy, _distinct_samples, _same_position_inputs,
                                                   candidate_columns, window_span)
from lightning_sanity.checks.leakage import log_partition_chance
from lightning_sanity.checks.target_inputs import MAX_ROWS, determined


def value_copies(y: torch.Tensor, candidates: dict[str, torch.Tensor], x: Optional[torch.Tensor] = None
                 ) -> list[LabelCopy]:
    """Tensors among ``candidates`` with a column equal to the continuous target ``y`` at every position of
    distinct samples, beyond chance: ``[LabelCopy]`` with ``how="equal values"`` and ``classes`` the number of
    distinct target values. ``x`` (the main input) tells distinct samples apart, and a column that is one function
    of ``x`` at the same position says nothing the input does not."""
    if not isinstance(y, torch.Tensor) or y.dim() == 0 or y.shape[0] < 2 or not y.is_floating_point():
        return []
    columns = {name: c for name, v in candidates.items() if (c := candidate_columns(y, v)) is not None}
    if not columns:
        return []
    columns = {name: c.detach().cpu() for name, c in columns.items()}
    target = y.detach().cpu()
    keep = _distinct_samples(target, columns, x)
    flat = target[keep].reshape(-1).double()[:MAX_ROWS]
    if flat.numel() < 2 or not bool(torch.isfinite(flat).all()):
        return []
    _, per_value = torch.unique(flat, return_counts=True)
    tests = sum(c.shape[-1] for c in columns.values())
    log_p = math.log(tests) + log_partition_chance(per_value.tolist())
    if log_p >= math.log(CHANCE):
        return []
    inputs = _same_position_inputs(x, y, keep, torch.ones(target[keep].shape, dtype=torch.bool))
    found = []
    for name, c in columns.items():
        values = c[keep].reshape(-1, c.shape[-1]).double()[:MAX_ROWS]
        for j in torch.nonzero((values == flat[:, None]).all(0)).flatten().tolist():
            if inputs is not None and determined(inputs, values[:, j])[0]:
                continue  # a function of the input at the same position: nothing the input does not say
            feature, span = window_span(y, candidates[name], j)
            found.append(LabelCopy(name, feature, "equal values", int(flat.numel()), int(per_value.numel()),
                                   max(log_p / math.log(10), -300.0), span))
    return found

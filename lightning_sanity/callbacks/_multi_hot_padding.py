"""``label-distribution`` glue for multi-hot targets padded with a real class id (the rule is
:func:`lightning_sanity.checks.multi_hot_padding.padded_class`; the batches are the ones the data checks read).

Example::

    >>> from lightning_sanity.callbacks._multi_hot_padding import multi_hot_rows
    >>> import torch
    >>> [tuple(r.shape) for r in multi_hot_rows([torch.zeros(6)], [(2, 3)])]
    [(2, 3)]
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.checks.multi_hot_padding import padded_class
from lightning_sanity.findings import Severity


def multi_hot_rows(values: list[torch.Tensor], shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    """The data checks' flattened targets back as ``(B, K)`` rows, for the batches whose target was 2-D."""
    if len(values) != len(shapes):
        return []
    return [v.reshape(s) for v, s in zip(values, shapes) if len(s) == 2 and s[1] >= 2 and v.numel() == s[0] * s[1]]


def report(cb: Any, trainer: Any, values: list[torch.Tensor], shapes: list[tuple[int, ...]],
           where: Optional[str]) -> bool:
    """Report a class that padding put on every shorter multi-hot row; whether it was reported."""
    found = padded_class(multi_hot_rows(values, shapes))
    if found is None:
        return False
    c = found["class"]
    cb.report(
        trainer, "label-distribution", Severity.WARNING,
        f"Class {c} is positive on every one of the {found['short_rows']} multi-hot target rows that hold fewer "
        f"labels than the longest row of their batch ({found['short_rows_with_others']} of them alongside other "
        f"labels), but on only {found['rate_on_long_rows']:.0%} of the {found['long_rows']} longest rows (chance "
        f"bound {found['chance_bound']:.1e}): ragged label lists padded with {c}, a real class id, before the "
        "scatter into multi-hot rows, so every short row is labelled with it.",
        f"Pad with an id that is not a class and drop it: `torch.zeros(B, K + 1).scatter_(1, padded, 1.0)[:, :K]` "
        f"with padding id K (or build the rows with one loop per sample); check that class {c} is not the "
        "padding value.",
        where=where, at_step=False, key="padded-class", data=found)
    return True

"""``target-leakage`` for a feature column that splits the classes into intervals, judged over the first epoch.

On the first batch such a column (:func:`lightning_sanity.checks.label_order.block_columns`) is only a candidate: a
strong honest feature separates a small batch perfectly as well (iris' petal length splits three classes on 64
rows one batch in ten, breast cancer's best feature one binary batch in three at 32 rows). An honest feature errs on
some rows, so over the whole first epoch (at least :data:`MIN_ROWS` distinct rows) it breaks the intervals; a code
of the label (ranks taken over records sorted by their class folder) or a measurement that defines the outcome (a
follow-up time below the outcome's horizon) never does. The candidate columns and the label are read from each
training batch of the first epoch (one slice each, on the host) and judged at its end, or at the end of fit.
Called by :class:`~lightning_sanity.callbacks.leakage.LeakageChecks`.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch

from lightning_sanity.batch import batch_items
from lightning_sanity.checks.label_order import block_columns

log = logging.getLogger(__name__)

#: Distinct rows over which the intervals must hold: from 128 rows on, no subset of the bundled data sets (iris,
#: wine, breast cancer) has a column that splits its classes into intervals.
MIN_ROWS = 128
#: Rows followed at most: beyond, the first epoch has said enough.
MAX_ROWS = 1 << 16


def _key_of(batch: Any, part: torch.Tensor) -> Any:
    return next((k for k, v in batch_items(batch) if v is part), None)


class LabelBlocks:
    """The first batch's candidate columns and label, followed over the first epoch."""

    def __init__(self, where: list[tuple[Any, int]], names: list[str], label: Any) -> None:
        self.where, self.names, self.label = where, names, label
        self.values: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.rows = 0

    @classmethod
    def start(cls, batch: Any, parts: list[torch.Tensor], columns: list[int], names: list[str],
              label: torch.Tensor) -> Optional["LabelBlocks"]:
        """Follow ``columns`` (of ``parts`` concatenated) and ``label`` when each is a part of ``batch`` found by
        identity (the same key in every batch); else None."""
        label_key, keys = _key_of(batch, label), [_key_of(batch, p) for p in parts]
        if label_key is None or any(k is None for k in keys):
            return None
        starts = [sum(int(p.shape[1]) if p.dim() == 2 else 1 for p in parts[:i]) for i in range(len(parts))]
        where = []
        for c in columns:
            i = max(j for j, s in enumerate(starts) if s <= c)
            where.append((keys[i], c - starts[i]))
        return cls(where, [names[c] for c in columns], label_key)

    def add(self, batch: Any) -> bool:
        """Read the columns and the label of ``batch``; whether enough rows are in."""
        values = [batch[k][:, j] if batch[k].dim() == 2 else batch[k] for k, j in self.where]
        self.values.append(torch.stack([v.detach().float() for v in values], 1).cpu())
        self.labels.append(batch[self.label].detach().reshape(-1).cpu())
        self.rows += int(self.labels[-1].shape[0])
        return self.rows >= MAX_ROWS

    def judge(self) -> tuple[list[str], int]:
        """``(names of the columns that still split the classes into intervals, distinct rows)``."""
        x, y = torch.cat(self.values), torch.cat(self.labels)
        pairs = torch.unique(torch.cat([x.double(), y.double()[:, None]], 1), dim=0)
        x, y = pairs[:, :-1], pairs[:, -1]
        classes, index = torch.unique(y, return_inverse=True)
        if x.shape[0] < MIN_ROWS or classes.numel() < 2:
            return [], int(x.shape[0])
        return [self.names[c] for c in block_columns(x, index, int(classes.numel()))], int(x.shape[0])


def follow_blocks(callback: Any, trainer: Any, batch: Any, last: bool) -> Optional[LabelBlocks]:
    """Feed ``callback._blocks`` a batch of the first epoch; judge it after the epoch's ``last`` batch. What to keep
    in ``callback._blocks``."""
    blocks = callback._blocks
    try:
        if not blocks.add(batch) and not last:
            return blocks
        finish_blocks(callback, trainer)
    except Exception:  # a check must never lose the user's run (a batch of another layout, a missing key)
        log.debug("label-interval follow-up failed", exc_info=True)
    return None


def finish_blocks(callback: Any, trainer: Any) -> None:
    """Judge the rows read so far and report the columns that kept the intervals."""
    blocks, callback._blocks = callback._blocks, None
    if blocks is None:
        return
    names, rows = blocks.judge()
    callback._ran["target-leakage"].append(
        f"no column splits the classes into intervals over the first epoch ({rows} distinct rows)" if rows >= MIN_ROWS
        else f"a column split the first batch's classes into intervals; {rows} distinct rows are too few to judge")
    if not names:
        return
    callback._found.add("target-leakage")
    callback.report(
        trainer, "target-leakage", "warning",
        f"Input column(s) {', '.join(names[:10])} split the samples into one interval of values per class on all "
        f"{rows} distinct samples of the first epoch: sorted by it, the labels never interleave, which no measured "
        "feature does over so many rows. It is a code of the label (ranks taken over records sorted by their class, "
        "as a path's class folder sorts them) or a value that defines the outcome (a follow-up time that is shorter "
        "than the horizon exactly when the event happened), so the model reads the answer and fails on data where "
        "it is unknown.",
        "Drop the column, or compute it from what is known before the outcome (order recordings by their date, not "
        "by a path that starts with the class folder; follow-up up to the prediction time only).",
        where=names[0], key="columns",
        data={"names": names[:50], "how": "blocks", "samples": rows},
    )

"""Sketches of float samples for ``split-overlap``'s near copies, gathered as the batches pass (no sync, no second
pass): one small projection per batch on the device, kept there (bounded) until judged. The judgement is
:func:`lightning_sanity.checks.near_copies.judge`.

Example::

    >>> import torch
    >>> copies = NearCopies()
    >>> copies.add(torch.randn(4, 8, 8), "train")
    >>> copies.judge() is None  # far too few samples to read natural spacing
    True
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from lightning_sanity.checks import near_copies as N
from lightning_sanity.checks.splits import overlap_severity

#: sketches kept per split (256 bytes each): beyond, later batches are not added. 256 validation samples give the
#: share of near copies to about 3 points, and the search costs one 256-row block of distances.
MAX_TRAIN, MAX_VAL = 1 << 14, 256
#: samples of at most this many values are kept as they come (16 MiB at most) and sketched in one go when judged:
#: a tabular row costs less to keep than to sketch on every step (seven small kernels, about 40 us on a CPU).
RAW_VALUES = 256


class NearCopies:
    """Sketches per split (``"train"``, ``"val"``) of float inputs of one sample shape."""

    def __init__(self) -> None:
        self._store: dict[str, list[torch.Tensor]] = {"train": [], "val": []}
        self._count = {"train": 0, "val": 0}
        self._shape: Optional[tuple[int, ...]] = None
        self.off = False

    def add(self, x: torch.Tensor, split: str) -> None:
        """Sketch batch ``x``; inputs that are not real-valued (token ids), or a sample shape that changes between
        batches, turn the reading off."""
        if self.off:
            return
        shape = tuple(x.shape[1:])
        if self._shape is None:
            if not N.float_values(x):
                self.clear()
                return
            self._shape = shape
        if shape != self._shape:
            self.clear()
            return
        room = (MAX_TRAIN if split == "train" else MAX_VAL) - self._count[split]
        if room <= 0:
            return
        rows = x if room >= x.shape[0] else x[:room]  # a slice of every row is an operator call a step for nothing
        rows = rows.detach() if rows.requires_grad else rows
        self._store[split].append(rows if rows[0].numel() <= RAW_VALUES else N.sketch(rows))
        self._count[split] += min(room, int(x.shape[0]))

    def judge(self) -> Optional[dict[str, Any]]:
        """The verdict of :func:`~lightning_sanity.checks.near_copies.judge`, or ``None``."""
        if self.off or not self._store["train"] or not self._store["val"]:
            return None
        train, val = torch.cat(self._store["train"]), torch.cat(self._store["val"])
        tabular = self._shape is not None and len(self._shape) == 1 and self._shape[0] <= N.TABULAR_FEATURES
        if tabular:
            train, val = N.standardise(train, val.to(train.device))
        elif self._shape is not None and math.prod(self._shape) <= RAW_VALUES:
            train, val = N.sketch(train), N.sketch(val)
        return N.judge(train, val.to(train.device), clusters=tabular)

    def clear(self) -> None:
        self._store = {"train": [], "val": []}
        self.off = True


def judge_near_copies(callback: Any, text: str) -> tuple[Optional[dict[str, Any]], str]:
    """The near-copies half of ``split-overlap``, judged when whole samples showed no exact overlap: the verdict of
    :func:`~lightning_sanity.checks.near_copies.judge` (or None) and the detail ``text`` with its figures appended."""
    copies = callback._near
    try:
        result = copies.judge()
    except Exception as err:  # the exact verdict stands
        return None, f"{text}; near copies not compared ({err!r})"
    finally:
        copies.clear()
    if result is None:
        return None, text
    within = ("not searched, as no validation sample came near" if result["train_share"] is None
              else f"{result['train_share']:.0%} of the samples have such a copy")
    result["figures"] = (
        f"{result['found']} of {result['samples']} validation samples ({result['share']:.0%}) have a training sample "
        f"far closer than their natural neighbours (within training, {within}; intrinsic dimension "
        f"{result['dims']:.1f}, median nearest / {result['k0']}th nearest distance {result['ratio']:.2f})")
    return result, f"{text}; {result['figures']}"


def report_near_copies(callback: Any, trainer: Any, text: str, result: Optional[dict[str, Any]],
                       threshold: float) -> None:
    """A finding when at least ``threshold`` of the validation samples (and 10) have a near copy in training."""
    if result is None or result["share"] < threshold or result["found"] < 10:
        return
    callback.detail(trainer, "split-overlap", text)
    severity = overlap_severity(result["share"], threshold)
    callback.report(
        trainer, "split-overlap", severity,
        f"Validation samples have near copies in the training data: {result['figures']}. Natural data spaces its "
        "neighbours smoothly; a copy with a little noise or jitter sits far inside that spacing. Copies of each record "
        "were made (offline augmentation, oversampling with noise, repeated measurements) before the split, so "
        "validation measures memory of the records, not generalisation.",
        "Split the original records first (one split per source image, patient or recording), then augment or "
        "oversample the training split only.",
        where="validation data", at_step=False, key="near_copies",
        data={"near_copy_share": result["share"], "validation_samples": result["samples"],
              "near_copies": result["found"], "training_near_copy_share": result["train_share"],
              "intrinsic_dims": result["dims"], "median_ratio": result["ratio"]},
    )

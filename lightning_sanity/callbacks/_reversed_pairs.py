"""``split-overlap`` glue for :func:`lightning_sanity.checks.reversed_pairs.judge_reversed`: the ``(B, 2)`` integer id
pairs of the first training epoch and the first validation run, kept on the device and read once.

Cost: per step, a copy of the batch's pairs (16 bytes a sample) while the inputs are id pairs; nothing otherwise.

Example::

    >>> import torch
    >>> pairs = ReversedPairs()
    >>> pairs.add(torch.randn(4, 2), "train")   # not ids: off for the run
    >>> pairs.off
    True
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.checks import reversed_pairs as RP
from lightning_sanity.checks.splits import overlap_severity

#: pairs kept per split (16 bytes each): beyond, later batches are not added.
MAX_PAIRS = 1 << 20


class ReversedPairs:
    """The id pairs of each split (``"train"``, ``"val"``), while every batch's input is ``(B, 2)`` integer ids."""

    def __init__(self) -> None:
        self.parts: dict[str, list[torch.Tensor]] = {"train": [], "val": []}
        self.count = {"train": 0, "val": 0}
        self.off = False

    def add(self, x: Any, split: str) -> None:
        if self.off:
            return
        if not RP.pair_ids(x):
            self.clear()
            return
        if self.count[split] < MAX_PAIRS:
            self.parts[split].append(x.detach().clone())
            self.count[split] += int(x.shape[0])

    def clear(self) -> None:
        self.parts = {"train": [], "val": []}
        self.off = True


def report_reversed(callback: Any, trainer: Any, text: str, threshold: float) -> None:
    """After the detail ``text`` of whole samples, a finding when validation pairs' reverses are training pairs
    ``threshold`` or more beyond chance (an error from one half), on pairs stored in both directions; judged when
    whole samples showed no overlap."""
    pairs = callback._reversed
    try:
        if pairs.off or not pairs.parts["train"] or not pairs.parts["val"]:
            return
        found = RP.judge_reversed(torch.cat(pairs.parts["train"]), torch.cat(pairs.parts["val"]))
    except Exception as err:  # the whole-sample verdict stands
        callback.detail(trainer, "split-overlap", f"{text}; reversed pairs not compared ({err!r})")
        return
    finally:
        pairs.clear()
    if found is None:
        return
    figures = (f"{found['reversed']} of {found['pairs']} validation pairs (u, v) ({found['share']:.0%}) have their "
               f"reverse (v, u) among the training pairs, where chance gives at most {found['chance']:.0%}; "
               f"{found['symmetric']:.0%} of all pairs are stored in both directions")
    callback.detail(trainer, "split-overlap", f"{text}; id pairs: {figures}")
    excess = found["share"] - found["chance"]
    if excess < threshold or found["reversed"] < 2:
        return
    severity = overlap_severity(excess, threshold)
    callback.report(
        trainer, "split-overlap", severity,
        f"Validation pairs are training pairs read backwards: {figures}. An undirected edge list stored in both "
        "directions was split by rows, so the other direction of most validation edges stays a training positive "
        "(and a message-passing edge): a symmetric scorer scores both alike, and validation measures memory, not "
        "link prediction.",
        "Split the undirected pairs (u < v) first, then add the reverse direction within each split (PyG: "
        "`RandomLinkSplit(is_undirected=True)`); remove both directions of a validation pair from the training "
        "edges and from the graph the encoder propagates over.",
        where="validation data", at_step=False, key="reversed-pairs",
        data={"validation_pairs": found["pairs"], "reversed_in_training": found["reversed"],
              "share": found["share"], "chance_share": found["chance"], "training_density": found["density"],
              "symmetric_share": found["symmetric"], "training_pairs": found["training_pairs"]},
    )

"""Padding trained as a label, for ``label-distribution``: token labels at padded positions that the loss counts.

Sequences of different lengths are padded to one length, inputs and labels alike. The labels of padded positions
must be the loss's ``ignore_index`` (-100 by default); padded with a real class instead (``pad_sequence``'s default
``padding_value=0`` is tag 0, an LM's labels copied from ``input_ids`` with the pad token left in), every padded
position is trained as that class: it dominates the label counts, and the model learns to find the padding.

Padded positions are read from the batch, never guessed from the labels:

- a dict batch's ``attention_mask == 0``;
- else the model's padding token (an ``nn.Embedding`` with ``padding_idx``) in a 2-D integer input;
- else a value of the 2-D integer input that occurs only as a trailing run of each row (``pad_sequence``'s fill),
  in rows of different lengths: a real token also occurs mid-sequence.

The bug: at least :data:`MIN_PADDED` padded positions whose labels have the input's shape, at least half of them
counted by the loss (not ``ignore_index``), all with one value. A bool "label" equal to the padded positions
(or their complement) is the padding mask itself, never a class label: not counted.

Example::

    >>> import torch
    >>> tokens = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0], [4, 5, 6, 7, 8]])
    >>> padded_positions(tokens).int().tolist()
    [[0, 0, 0, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]
    >>> seen = PaddingLabels()
    >>> for _ in range(4):
    ...     seen.add(tokens, torch.where(tokens == 0, 0, 1))
    >>> seen.verdict(ignore_index=-100)["label"]
    0
    >>> seen.verdict(ignore_index=0) is None   # the padding carries the loss's ignore_index
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch
from torch import nn

#: Padded positions needed before judging (four batches of short sequences hold hundreds).
MIN_PADDED = 16


def model_padding_token(model: nn.Module) -> Optional[int]:
    """The ``padding_idx`` of the model's embeddings when they agree on one, else None."""
    found = {m.padding_idx for m in model.modules() if isinstance(m, nn.Embedding) and m.padding_idx is not None}
    return found.pop() if len(found) == 1 else None


def padded_positions(tokens: torch.Tensor, pad_id: Optional[int] = None) -> Optional[torch.Tensor]:
    """Where ``tokens`` (2-D, integer) is padding: ``pad_id`` anywhere, or without it a value found only in trailing
    runs of rows of different lengths; None when no padding is found."""
    if tokens.dim() != 2 or tokens.is_floating_point() or tokens.numel() == 0:
        return None
    if pad_id is not None:
        mask = tokens == pad_id
        return mask if bool(mask.any()) else None
    value = tokens[:, -1].mode().values
    same = tokens == value
    trailing = same.flip(1).int().cumprod(1).flip(1).bool()
    lengths = trailing.sum(1)
    if not bool(torch.equal(same, trailing)) or int(lengths.min()) == int(lengths.max()):
        return None
    return trailing


class PaddingLabels:
    """Counts, over the first batches, the labels found at padded positions (see the module's docstring)."""

    def __init__(self, pad_id: Optional[int] = None) -> None:
        self.pad_id = pad_id
        self.padded = 0
        self.values: dict[int, int] = {}
        self.labels = 0

    def add(self, tokens: Any, labels: Any, attention_mask: Any = None) -> None:
        if not isinstance(tokens, torch.Tensor) or not isinstance(labels, torch.Tensor) or tokens.shape != labels.shape:
            return
        if labels.is_floating_point():
            return
        # The first few batches only: read on the host, one copy each, instead of a sync per operation.
        tokens, labels = tokens.detach().cpu(), labels.detach().cpu()
        if isinstance(attention_mask, torch.Tensor):
            attention_mask = attention_mask.detach().cpu()
        if isinstance(attention_mask, torch.Tensor) and attention_mask.shape == tokens.shape:
            mask = attention_mask == 0
        else:
            mask = padded_positions(tokens, self.pad_id)
        if mask is not None and labels.dtype == torch.bool and (torch.equal(labels, mask) or torch.equal(labels, ~mask)):
            return  # the padding mask itself (a `src_key_padding_mask` beside the tokens), never a class label
        self.labels += labels.numel()
        if mask is None or not bool(mask.any()):
            return
        found, counts = torch.unique(labels[mask], return_counts=True)
        self.padded += int(counts.sum())
        for value, count in zip(found.tolist()[:16], counts.tolist()[:16]):
            self.values[value] = self.values.get(value, 0) + count

    def add_batch(self, batch: Any, x: Any, y: Any) -> None:
        """Find the token input beside the labels ``y`` in a batch (``x`` as split, or a dict's ``input_ids``)."""
        if isinstance(batch, Mapping) and isinstance(batch.get("input_ids"), torch.Tensor):
            self.add(batch["input_ids"], y, batch.get("attention_mask"))
        elif isinstance(x, torch.Tensor):
            self.add(x, y)

    def verdict(self, ignore_index: Optional[int]) -> Optional[dict[str, Any]]:
        """Figures when the padding is trained as one real label, else None."""
        counted = {v: c for v, c in self.values.items() if v != ignore_index}
        trained = sum(counted.values())
        if self.padded < MIN_PADDED or len(counted) != 1 or 2 * trained < self.padded:
            return None
        (label, count), = counted.items()
        return {"label": label, "padded_positions": self.padded, "trained_as_label": count,
                "labels": self.labels, "padding_share": round(count / max(self.labels, 1), 4),
                "pad_id": self.pad_id}


def report_padding_labels(callback: Any, trainer: Any, seen: Optional[PaddingLabels], facts: dict[str, Any],
                          where: Optional[str]) -> None:
    """The ``label-distribution`` warning for :meth:`PaddingLabels.verdict`, when there is one."""
    if seen is None:
        return
    ignore = facts.get("ignore_index", -100)
    found = seen.verdict(ignore if isinstance(ignore, int) else -100)
    if found is None:
        return
    from lightning_sanity.findings import Severity

    callback.report(
        trainer, "label-distribution", Severity.WARNING,
        f"Padding is trained as label {found['label']}: {found['trained_as_label']} of the {found['labels']} token "
        f"labels in the first batches ({found['padding_share']:.0%}) sit at padded positions and carry "
        f"{found['label']}, a real class of the loss (its ignore_index is {ignore}), so the model learns to predict "
        f"{found['label']} for padding and that class's count is inflated.",
        f"Pad the labels with the loss's ignore_index: `pad_sequence(labels, batch_first=True, padding_value={ignore})`"
        " (or `labels[attention_mask == 0] = -100`).",
        where=where, at_step=False, data=found, key="padding-labels")

"""Which part of a tuple batch holds the labels, as the first training step's loss shows it.

A batch ``(x, y)`` has its labels second; a batch of three or more parts need not: an EmbeddingBag's
``(tokens, offsets, y)``, a tabular ``(x_cat, x_num, y)``, a ``(x, lengths, y)`` of packed sequences. Which part is
the label is not a convention the batch says, but the loss does: the part the first step's recognised loss call
(:func:`lightning_sanity.checks.losses.loss_kind`) takes as its target, the very tensor, an equal one, or its values
reshaped or cast (a token tagger's ``tags.reshape(-1)``). Used by
:class:`~lightning_sanity.callbacks.data_checks.DataChecks` for ``label-distribution``.

Example::

    >>> import torch, torch.nn.functional as F
    >>> batch = (torch.arange(6), torch.tensor([0, 3]), torch.tensor([1, 0]))
    >>> source = LabelSource()
    >>> source.start(batch, None)
    >>> _ = F.cross_entropy(torch.zeros(2, 2), batch[2])
    >>> source.find(batch)
    2
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.batch import split_batch
from lightning_sanity.callbacks._step_targets import LossTargets

#: ``collector.facts`` key: ``(index, parts)``, the part of a tuple batch of ``parts`` parts that the first training
#: step's loss took as its target (set by ``DataChecks`` at that step's end; absent when not found).
LABEL_PART_FACT = "loss_label_part"


class LabelSource:
    """Watches the first step's loss calls (started only for a tuple batch of three or more parts and no
    ``get_target``) and names the batch part that is their target."""

    def __init__(self) -> None:
        self._losses: Optional[LossTargets] = None

    def start(self, batch: Any, get_target: Any) -> None:
        if get_target is None and type(batch) in (tuple, list) and len(batch) >= 3:
            self._losses = LossTargets().start()

    def stop(self) -> list[torch.Tensor]:
        losses, self._losses = self._losses, None
        return losses.stop() if losses is not None else []

    def find(self, batch: Any, seen: Optional[list[torch.Tensor]] = None) -> Optional[int]:
        """The index (1 or more: never the input) of the batch part the loss compared with (the targets ``seen``
        when the watch was stopped earlier, at backward), or None."""
        targets = (seen or []) + self.stop()
        if type(batch) not in (tuple, list):
            return None
        for target in targets:
            for i, part in enumerate(batch[1:], 1):
                if part is target:
                    return i
            for i, part in enumerate(batch[1:], 1):
                if (isinstance(part, torch.Tensor) and part.shape == target.shape and part.dtype == target.dtype
                        and part.device == target.device and torch.equal(part, target.detach())):
                    return i
            for i, part in enumerate(batch[1:], 1):
                if _flattened(part, target):
                    return i
        return None


def _flattened(part: Any, target: torch.Tensor) -> bool:
    """Whether ``target`` holds ``part``'s values reshaped or cast (a tagger's ``tags.reshape(-1)``, ``y.long()``).
    Never from float to integer: truncated floats equal to the target would be a coincidence."""
    if (not isinstance(part, torch.Tensor) or part.numel() != target.numel() or part.device != target.device
            or (part.is_floating_point() and not target.is_floating_point()) or part.is_complex()):
        return False
    return torch.equal(part.reshape(-1).to(target.dtype), target.detach().reshape(-1))


def batch_target(batch: Any, facts: Any) -> Any:
    """The target of ``batch`` for a check that compares the splits: the part the first training step's loss took as
    its target (``facts[LABEL_PART_FACT]``) when the batch has as many parts, else :func:`split_batch`'s.

    >>> batch = (torch.tensor([3, 4]), torch.tensor([7, 7]), torch.tensor([0.5, -1.0]))  # (users, items, rating)
    >>> batch_target(batch, {LABEL_PART_FACT: (2, 3)}).tolist(), batch_target(batch, {}).tolist()
    ([0.5, -1.0], [7, 7])
    """
    part = facts.get(LABEL_PART_FACT) if facts is not None else None
    if part is not None and type(batch) in (tuple, list) and len(batch) == part[1]:
        return batch[part[0]]
    return split_batch(batch)[1]

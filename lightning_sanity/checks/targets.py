"""Whether a loss call's target comes from the batch's labels, when the model shifts them itself.

Causal language models in the HuggingFace style take ``labels`` equal to ``input_ids`` (with ignored positions
set to -100) and shift them inside ``forward``: ``labels[..., 1:]`` (older ``transformers``), or the labels
padded by one ignored token and then shifted (``ForCausalLMLoss``), which makes a new tensor. Such a target is
still the batch's labels, so the label checks must judge them.

Example::

    >>> import torch
    >>> labels = torch.tensor([[5, 6, 7, -100], [8, 9, -100, -100]])
    >>> padded = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:].reshape(-1)
    >>> shifted_batch_target(padded, labels), shifted_batch_target(labels[..., 1:].reshape(-1), labels)
    (True, True)
    >>> shifted_batch_target(torch.tensor([1, 2, 3, 4, 5, 6, 7, 8]), labels)
    False
"""

from __future__ import annotations

from typing import Any

import torch


def shifted_batch_target(target: Any, batch_target: Any, ignore_index: int = -100) -> bool:
    """Whether ``target`` holds the batch's ``(B, T, ...)`` labels shifted left by one position along dim 1.

    Either sliced (``labels[:, 1:]``, one position fewer) or padded with ``ignore_index`` at the end (as many
    positions); any shape or dtype of the same values. A target whose kept values are all one value counts too
    (the padding-only label mask this is meant to catch), as long as the positions match.
    """
    if not isinstance(target, torch.Tensor) or not isinstance(batch_target, torch.Tensor):
        return False
    if batch_target.dim() < 2 or batch_target.shape[1] < 2 or batch_target.is_floating_point():
        return False
    try:
        values = target.detach().reshape(-1)
        labels = batch_target.detach().to(values.device)
        sliced = labels[:, 1:]
        if values.numel() == sliced.numel():
            candidate = sliced.reshape(-1)
        elif values.numel() == labels.numel():
            pad = torch.full_like(labels[:, :1], ignore_index)
            candidate = torch.cat([sliced, pad], dim=1).reshape(-1)
        else:
            return False
        if bool((candidate == ignore_index).all()):
            return False  # nothing left to compare
        return bool(torch.equal(values.long(), candidate.long()))
    except Exception:  # incomparable tensors: not known to be the batch's
        return False

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


def twice_shifted(target: Any, batch_input: Any, batch_target: Any, ignore_index: int = -100) -> bool:
    """Whether a next-token loss scores position ``t`` on input token ``t + 2``: the batch's labels already are
    the input ids shifted left by one, and the loss shifts them once more (:func:`shifted_batch_target`).

    Exact equality on every kept label, so no threshold: labels that are the inputs shifted by one everywhere are
    a shift the user made, not a coincidence (sequences that repeat one token, where any shift agrees, never count).

    >>> ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6], [2, 7, 1, 8, 2, 8, 1, 8]])
    >>> pre = torch.cat([ids[:, 1:], torch.full_like(ids[:, :1], -100)], dim=1)
    >>> twice_shifted(pre[:, 1:].reshape(-1), ids, pre), twice_shifted(ids[:, 1:].reshape(-1), ids, ids)
    (True, False)
    """
    if not isinstance(batch_input, torch.Tensor) or not isinstance(batch_target, torch.Tensor):
        return False
    if batch_input.shape != batch_target.shape or batch_input.is_floating_point() or batch_input.dim() != 2:
        return False
    if not shifted_batch_target(target, batch_target, ignore_index):
        return False
    ids, labels = batch_input.detach(), batch_target.detach().to(batch_input.device)
    kept = labels[:, :-1] != ignore_index
    if int(kept.sum()) < 2:
        return False
    ahead = labels[:, :-1] == ids[:, 1:]
    same = labels[:, :-1] == ids[:, :-1]
    return bool(ahead[kept].all()) and not bool(same[kept].all())

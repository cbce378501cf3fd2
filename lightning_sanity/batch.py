"""Getting at a batch's inputs and targets, whatever shape the user's dataloader gives.

Recognised: a tensor (input only); a tuple or list ``(x, y, ...)``; a dict with an input key (``x``, ``input``,
``inputs``, ``image``, ``images``, ``input_ids``, HuggingFace's ``pixel_values``, ``input_features`` and
``input_values``, ``pixels``, ``features``, ``data``) and a target key (``y``, ``label``, ``labels``,
``target``, ``targets``). Anything else needs the user's ``get_input`` / ``get_target`` functions, and the
checks that need them are skipped with a reason.

Example::

    >>> import torch
    >>> x, y = split_batch({"image": torch.zeros(2, 3), "label": torch.tensor([0, 1])})
    >>> tuple(x.shape), y.tolist()
    ((2, 3), [0, 1])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import torch

INPUT_KEYS = ("x", "input", "inputs", "image", "images", "input_ids", "pixel_values", "input_features",
              "input_values", "pixels", "features", "data")
TARGET_KEYS = ("y", "label", "labels", "target", "targets")

BatchFn = Optional[Callable[[Any], Any]]


def split_batch(batch: Any, get_input: BatchFn = None, get_target: BatchFn = None) -> tuple[Any, Any]:
    """``(input, target)`` of a batch; either is None when it cannot be found."""
    y = get_target(batch) if get_target is not None else _default_target(batch)
    return input_of(batch, get_input), y


def input_of(batch: Any, get_input: BatchFn = None) -> Any:
    """The input of a batch (as :func:`split_batch` finds it), or None."""
    return get_input(batch) if get_input is not None else _default_input(batch)


def non_target_keys(batch: Mapping) -> dict:
    """A dict batch without its target keys: the model's inputs when it takes them all (``forward(**batch)``).

    >>> sorted(non_target_keys({"input_ids": 1, "attention_mask": 2, "labels": 3}))
    ['attention_mask', 'input_ids']
    """
    return {k: v for k, v in batch.items() if k not in TARGET_KEYS}


def joined_inputs(batch: Any) -> Optional[torch.Tensor]:
    """A dict batch's non-target tensors with one row per sample, joined per sample as ``(B, F)`` (int64, or float64
    when any is floating point: the values exactly): the input of a batch whose keys name none, such as a
    recommender's ``{"user": u, "track": t, "target": y}``, where the sample is all the ids together. None for other
    batches, or when the tensors disagree on the batch size.

    >>> joined_inputs({"user": torch.tensor([3, 4]), "track": torch.tensor([7, 7]), "target": torch.zeros(2)})
    tensor([[3, 7],
            [4, 7]])
    """
    if not isinstance(batch, Mapping):
        return None
    parts = [v for k, v in batch.items() if k not in TARGET_KEYS and isinstance(v, torch.Tensor) and v.dim() >= 1
             and not v.is_complex()]
    if not parts or any(p.shape[0] != parts[0].shape[0] for p in parts):
        return None
    rows = int(parts[0].shape[0])
    dtype = torch.float64 if any(p.is_floating_point() for p in parts) else torch.int64
    return torch.cat([p.detach().reshape(rows, -1).to(dtype) for p in parts], 1)


def batch_items(batch: Any) -> list[tuple[Any, Any]]:
    """``(key, part)`` of a dict batch, ``(index, part)`` of a tuple or list batch, else ``[]``: where a part the
    suite found by identity is named (``batch['key']``, ``batch[2]``) and found again in later batches.

    >>> batch_items({"x": 1, "y": 2}), batch_items((3, 4)), batch_items(5)
    ([('x', 1), ('y', 2)], [(0, 3), (1, 4)], [])
    """
    if isinstance(batch, Mapping):
        return list(batch.items())
    return list(enumerate(batch)) if isinstance(batch, (list, tuple)) else []


def first_part(batch: Any) -> Optional[torch.Tensor]:
    """The first non-target tensor with a batch axis of a dict batch whose keys name no input (a model called as
    ``self.model(batch["num"], batch["hood"])``): where the model's input is looked for when nothing names it.

    >>> first_part({"hood": torch.tensor([1, 2]), "num": torch.zeros(2, 3), "target": torch.zeros(2)})
    tensor([1, 2])
    >>> first_part((torch.zeros(2), torch.ones(2))) is None
    True
    """
    if not isinstance(batch, Mapping):
        return None
    return next((v for k, v in batch.items() if k not in TARGET_KEYS and isinstance(v, torch.Tensor) and v.dim() >= 1),
                None)


def _default_input(batch: Any) -> Any:
    if type(batch) in (tuple, list):  # the common case, before the slower abstract-class checks
        return batch[0] if batch else None
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, Mapping):
        return next((batch[k] for k in INPUT_KEYS if k in batch), None)
    if isinstance(batch, Sequence) and not isinstance(batch, str) and len(batch) >= 1:
        return batch[0]
    return None


def _default_target(batch: Any) -> Any:
    if isinstance(batch, Mapping):
        return next((batch[k] for k in TARGET_KEYS if k in batch), None)
    if isinstance(batch, Sequence) and not isinstance(batch, str) and len(batch) >= 2:
        return batch[1]
    return None


def batch_size(batch: Any) -> Optional[int]:
    """The leading dimension of the first tensor found in ``batch``, or None."""
    tensor = first_tensor(batch)
    return int(tensor.shape[0]) if tensor is not None and tensor.dim() > 0 else None


def first_tensor(batch: Any) -> Optional[torch.Tensor]:
    """The first tensor found in ``batch`` (nested sequences and mappings), or None."""
    if isinstance(batch, torch.Tensor):
        return batch
    if type(batch) in (tuple, list) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]  # the common case, before the slower abstract-class checks
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, Sequence) and not isinstance(batch, str):
        for item in batch:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def slice_batch(batch: Any, index: Any) -> Any:
    """The same batch structure holding only the samples at ``index`` of every tensor with a batch dimension."""
    size = batch_size(batch)

    def cut(item: Any) -> Any:
        if isinstance(item, torch.Tensor):
            return item[index] if item.dim() > 0 and item.shape[0] == size else item
        if isinstance(item, Mapping):
            return type(item)({k: cut(v) for k, v in item.items()}) if not hasattr(item, "_fields") else item
        if isinstance(item, tuple) and hasattr(item, "_fields"):
            return type(item)(*(cut(v) for v in item))
        if isinstance(item, (list, tuple)):
            return type(item)(cut(v) for v in item)
        return item

    return cut(batch)


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    """``obj`` with ``fn`` applied to every tensor in it (nested tuples, named tuples, lists and mappings)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(map_tensors(v, fn) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(v, fn) for v in obj)
    if isinstance(obj, Mapping):
        items = {k: map_tensors(v, fn) for k, v in obj.items()}
        try:
            return type(obj)(items)
        except Exception:
            return items
    return obj


def tensors_of(obj: Any) -> list[torch.Tensor]:
    """Every tensor in ``obj``, in order."""
    found: list[torch.Tensor] = []
    map_tensors(obj, lambda t: found.append(t) or t)
    return found

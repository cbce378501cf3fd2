"""Which rows of its dataset a training sampler can ever draw: the pure function behind ``val-divergence``'s
``sampler-reach`` pattern.

``WeightedRandomSampler(weights, num_samples)`` draws indices from ``range(len(weights))``: it takes one weight per
*sample*. Given one weight per *class* (``1 / class_count``, a common slip when balancing classes), it draws only the
first C rows of the dataset, over and over: the model memorises C rows and validation measures nothing else. A
weight vector shorter than the dataset is never a way to exclude rows (a zero weight is), so the rule is exact: no
chance is involved and no healthy sampler has it.

Example::

    >>> import torch
    >>> from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler
    >>> data = TensorDataset(torch.zeros(300, 4))
    >>> sampler_reach(DataLoader(data, sampler=WeightedRandomSampler([0.4, 0.6], 300)))["reachable_rows"]
    2
    >>> sampler_reach(DataLoader(data, sampler=WeightedRandomSampler([1.0] * 300, 300))) is None
    True
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch.utils.data import WeightedRandomSampler


def _sampler(loader: Any) -> Any:
    sampler = getattr(loader, "sampler", None)
    batch_sampler = getattr(loader, "batch_sampler", None)
    if not isinstance(sampler, WeightedRandomSampler) and batch_sampler is not None:
        sampler = getattr(batch_sampler, "sampler", sampler)
    return sampler


def sampler_reach(loader: Any) -> Optional[dict[str, Any]]:
    """Figures when ``loader``'s ``WeightedRandomSampler`` has fewer weights than its dataset has rows (so the rows
    beyond them are never drawn), else None. Reads the sampler and ``len(dataset)``; never iterates anything."""
    sampler = _sampler(loader)
    dataset = getattr(loader, "dataset", None)
    if not isinstance(sampler, WeightedRandomSampler) or dataset is None:
        return None
    try:
        rows = len(dataset)
    except TypeError:  # an iterable dataset has no length: nothing to compare with
        return None
    weights = torch.as_tensor(sampler.weights).reshape(-1)
    if weights.numel() >= rows:
        return None
    return {"weights": int(weights.numel()), "reachable_rows": int((weights > 0).sum()), "dataset_rows": int(rows),
            "num_samples": int(sampler.num_samples)}

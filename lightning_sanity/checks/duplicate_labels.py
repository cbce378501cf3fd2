"""``label-distribution``'s identical inputs that carry different labels: exact fingerprints, and whether the labels
of the identical inputs agree more often than chance.

Inputs are fingerprinted from their exact bits (:func:`lightning_sanity.checks.splits.fingerprints`), never from a
rounded projection: values that span many orders of magnitude (a power spectrogram, 1e-14 to 1e7) would round the
quiet samples' projections to one value. A HuggingFace-style dict batch is fingerprinted on its *effective* tokens,
the ``input_ids`` where ``attention_mask`` is set, in order: the same text padded to another length or on the other
side is the same input.

Identical inputs whose labels differ are label noise when their labels still mostly agree, and inputs that do not
hold what decides the label when they agree no more often than labels drawn at random from the label prior would
(right truncation that keeps only a shared e-mail header, a placeholder input, labels shuffled apart from their
inputs). :func:`duplicate_labels` measures both.

Example::

    >>> import torch
    >>> x = torch.zeros(12, 40)
    >>> found = duplicate_labels(input_fingerprints(x), torch.tensor([0, 1, 2, 3] * 3))
    >>> found.groups, found.involved, found.at_chance
    (1, 12, True)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Optional

import torch

from lightning_sanity.batch import TARGET_KEYS
from lightning_sanity.checks import splits as S

#: Inputs with at least this many values per sample (images, sequences, embeddings) almost never repeat exactly by
#: nature, so identical ones with different labels point at mis-paired data rather than ambiguous features.
RICH_INPUT_FEATURES = 32
#: Labels of identical inputs "agree no more than chance" when their agreeing pairs are within this many standard
#: deviations of what labels drawn from the prior give, while full agreement lies beyond it (3 sigma: about one
#: healthy run in a thousand reads informative labels as chance, or chance as informative).
CHANCE_SIGMAS = 3.0
#: Ranks of effective tokens hashed with their own weight; a longer text's later tokens share the last weights.
_TOKEN_RANKS = 4096


def input_fingerprints(x: torch.Tensor) -> torch.Tensor:
    """One int64 hash per sample of ``x`` from the exact bits of its values (equal samples, equal hashes)."""
    x = torch.view_as_real(x) if x.is_complex() else x
    return S.fingerprints(x if x.dim() > 1 else x.reshape(-1, 1))


def token_mask(batch: Any, ids: torch.Tensor) -> Optional[torch.Tensor]:
    """The ``attention_mask`` of a dict batch whose ``input_ids`` is ``ids`` (2-D integer ids) and whose other input
    tensors are all per token (``token_type_ids``, ``position_ids``), else None: with an image or other features
    beside them, the tokens are not the whole input.

    >>> ids = torch.tensor([[2, 5, 0]])
    >>> token_mask({"input_ids": ids, "attention_mask": ids != 0, "labels": torch.tensor([1])}, ids)
    tensor([[ True,  True, False]])
    """
    if not isinstance(batch, Mapping) or batch.get("input_ids") is not ids:
        return None
    mask = batch.get("attention_mask")
    if (not isinstance(mask, torch.Tensor) or mask.shape != ids.shape or ids.dim() != 2
            or ids.is_floating_point() or ids.is_complex()):
        return None
    others = (v for k, v in batch.items() if k not in TARGET_KEYS and isinstance(v, torch.Tensor))
    return mask if all(v.shape == ids.shape for v in others) else None


def token_fingerprints(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """One int64 hash per row of the tokens kept by ``mask``, by their rank among the kept tokens: the padding's
    value, side and length do not count.

    >>> ids = torch.tensor([[5, 6, 0, 0], [1, 1, 5, 6], [5, 6, 7, 0]])
    >>> mask = torch.tensor([[1, 1, 0, 0], [0, 0, 1, 1], [1, 1, 1, 0]])
    >>> f = token_fingerprints(ids, mask)
    >>> bool(f[0] == f[1]), bool(f[0] == f[2])
    (True, False)
    """
    kept = mask.detach() != 0
    rank = (kept.long().cumsum(1) - 1).clamp(0, _TOKEN_RANKS - 1)
    weights = S.hash_weights(_TOKEN_RANKS, ids.device)[rank]
    values = ids.detach().long() + 1  # a kept token 0 must differ from a dropped position
    values = values ^ (values >> 13)
    return torch.where(kept, values * weights, torch.zeros((), dtype=torch.long, device=ids.device)).sum(1)


@dataclasses.dataclass
class DuplicateLabels:
    """Groups of identical inputs and how their labels agree (pairs of samples within a group)."""

    groups: int = 0  # groups of identical inputs that carry more than one label
    involved: int = 0  # samples in those groups
    largest: int = 0  # samples in the largest of them
    pairs: int = 0  # pairs of samples within groups of identical inputs (any labels)
    agreeing: int = 0  # of those, pairs with equal labels
    chance: float = 0.0  # agreeing pairs expected of labels drawn from the prior
    chance_sd: float = 0.0

    @property
    def at_chance(self) -> bool:
        """The identical inputs' labels agree no more than random labels would, and that is told apart from full
        agreement: the inputs carry nothing about the label there."""
        bound = self.chance + CHANCE_SIGMAS * self.chance_sd
        return self.groups > 0 and self.agreeing <= bound < self.pairs

    def as_dict(self) -> dict[str, Any]:
        return {"groups": self.groups, "samples": self.involved, "largest_group": self.largest,
                "pairs": self.pairs, "agreeing_pairs": self.agreeing, "chance_pairs": round(self.chance, 2),
                "chance_sd": round(self.chance_sd, 2), "labels_at_chance": self.at_chance}


def duplicate_labels(prints: torch.Tensor, labels: torch.Tensor) -> DuplicateLabels:
    """Conflicting groups of equal fingerprints, and their pairs' label agreement against the label prior's.

    Within a group of k samples whose labels are drawn from the prior p, the agreeing pairs
    A = sum_c n_c (n_c - 1) / 2 have mean k(k-1)/2 q with q = sum_c p_c^2, and (multinomial factorial moments)
    Var(2A) = k^(4) q^2 + 4 k^(3) sum_c p_c^3 + 2 k^(2) q - (k^(2) q)^2, k^(j) the falling powers; groups add up.

    >>> d = duplicate_labels(torch.tensor([7, 7, 7, 7, 3, 4]), torch.tensor([0, 1, 0, 1, 0, 1]))
    >>> d.groups, d.involved, d.pairs, d.agreeing, d.chance
    (1, 4, 6, 2, 3.0)
    """
    prints, labels = prints.reshape(-1).cpu(), labels.reshape(-1).cpu()
    if prints.numel() < 2 or prints.numel() != labels.numel():
        return DuplicateLabels()
    _, group = torch.unique(prints, return_inverse=True)
    _, label = torch.unique(labels, return_inverse=True)
    classes = int(label.max()) + 1
    prior = torch.bincount(label, minlength=classes).double() / label.numel()
    q, cubes = float((prior ** 2).sum()), float((prior ** 3).sum())
    table = torch.zeros(int(group.max()) + 1, classes, dtype=torch.float64)
    table.index_put_((group, label), torch.ones(label.numel(), dtype=torch.float64), accumulate=True)
    table = table[table.sum(1) >= 2]
    if not table.numel():
        return DuplicateLabels()
    k = table.sum(1)
    mixed = (table > 0).sum(1) > 1
    k2, k3, k4 = k * (k - 1), k * (k - 1) * (k - 2), k * (k - 1) * (k - 2) * (k - 3)
    variance = float((k4 * q * q + 4 * k3 * cubes + 2 * k2 * q - (k2 * q) ** 2).sum()) / 4
    return DuplicateLabels(
        groups=int(mixed.sum()), involved=int(k[mixed].sum()), largest=int(k[mixed].max()) if mixed.any() else 0,
        pairs=int((k2 / 2).sum()), agreeing=int((table * (table - 1) / 2).sum()),
        chance=float((k2 / 2).sum()) * q, chance_sd=math.sqrt(max(variance, 0.0)))

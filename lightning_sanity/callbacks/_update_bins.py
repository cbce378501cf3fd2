"""Which layers the update ratio copies on a measuring step: bins of layers in rotation, large parameters in slices.

The update ratio needs a copy of the weights from before the step. Copying the whole model would double its
memory; copying one bin of layers per measuring step, and a slice of a parameter larger than a bin, keeps the
suite's extra memory to a fraction of the largest layer, while every layer is still measured in turn.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import torch

#: The update ratio is also measured on each of the first steps: a learning rate that is far too high shows
#: (and may diverge) long before the first logging step.
_EARLY_UPDATE_STEPS = 10
#: The update ratio copies at most this many parameter elements per measuring step, or a quarter of the largest
#: layer when that is larger: layers are measured in bins of that size, one bin per measuring step in rotation,
#: and a parameter larger than a bin in slices of it, so the suite's extra memory stays a fraction of the largest
#: layer (not a second copy of the whole model, nor of its largest layer).
_UPDATE_BIN_MIN = 1 << 20
#: The largest layer is copied in this many slices (one per visit of its bin): its update is the slice's,
#: scaled by its share of the parameter, an unbiased estimate of the sum of squares over exchangeable rows.
_SLICES_OF_LARGEST = 4

@dataclasses.dataclass
class UpdateBins:
    """Layers packed into bins for the update ratio, measured one bin per measuring step in rotation."""

    bin_of: list[int] = dataclasses.field(default_factory=list)
    masks: list[torch.Tensor] = dataclasses.field(default_factory=list)
    current: int = 0
    #: measuring steps at the start of the run (every step up to this one measures)
    early: int = _EARLY_UPDATE_STEPS
    #: elements per bin; a parameter larger than this is copied a slice at a time
    budget: int = 0
    #: visits of the rotation so far: the offset of the next slice of a large parameter
    visits: int = 0
    #: the whole model fits one bin: every measuring step copies all of it (and may reuse the copy)
    whole: bool = True

    @classmethod
    def plan(cls, numels: tuple[int, ...]) -> "UpdateBins":
        """Layers in order, packed into bins of at most max(largest layer / 4, ``_UPDATE_BIN_MIN``) elements."""
        largest = max(numels, default=0)
        budget = max(-(-largest // _SLICES_OF_LARGEST), _UPDATE_BIN_MIN)
        bin_of, b, filled = [], 0, 0
        for n in numels:
            if filled and filled + n > budget:
                b, filled = b + 1, 0
            bin_of.append(b)
            filled += n
        masks = [torch.tensor([x == k for x in bin_of], dtype=torch.bool) for k in range(b + 1)]
        # Each layer is measured at least twice in the first steps (a learning rate far too high shows there).
        whole = sum(numels) <= budget
        return cls(bin_of, masks, early=max(_EARLY_UPDATE_STEPS, 2 * len(masks)), budget=budget, whole=whole)

    def slices(self, tensors: list[torch.Tensor]) -> tuple[list[torch.Tensor], Optional[list[float]]]:
        """``tensors`` with each one over the budget replaced by a slice of it (rotating with the visits), and
        the factor that scales a slice's norm to the whole (None: nothing sliced)."""
        budget = self.budget
        if not budget or all(t.numel() <= budget for t in tensors):
            return tensors, None
        out, scale = [], []
        for t in tensors:
            n = t.numel()
            if n <= budget or not t.is_contiguous():
                out.append(t)
                scale.append(1.0)
                continue
            start = (self.visits * budget) % n
            piece = t.detach().view(-1)[start:start + budget]
            out.append(piece)
            scale.append((n / piece.numel()) ** 0.5)
        return out, scale

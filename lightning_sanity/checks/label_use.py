"""How the labels use the head and the loss: pure functions for ``label-distribution``.

- :func:`unused_head_classes`: a classification head with more outputs than the labels ever use (10 outputs for
  3 classes). The extra logits are only ever pushed down, so training works and accuracy is unaffected, but the
  number of classes is likely wrong somewhere (a copied ``num_classes``, labels remapped to a subset). With label
  smoothing it costs: ``eps`` of every target's mass is spread over all C outputs, so ``eps * u / C`` of it lands
  on the ``u`` classes that never occur and the loss floor rises. So: ``info`` without smoothing, a ``warning``
  with it.
- Imbalance (judged in the callback): imbalance alone is not a bug. A loss that weighs the classes (``weight=`` or
  ``pos_weight=``) or a head initialised at the prior has handled it: ``info``. Only a heavy imbalance met by an
  unweighted loss from a uniform start is a ``warning``: the first updates are spent learning the prior, and the
  minority classes contribute ``1 / ratio`` of the gradient.

How many labels are enough: if the ``u`` classes never seen in ``N`` labels together had even the share they
would have at half their uniform share, ``u / 2C``, or at half the share of the rarest class seen (a long tail),
whichever is smaller, all of them would be missed with probability ``(1 - share)^N <= exp(-N * share)``; that is
below 1 / 1000 once ``N * share >= ln 1000``. For one missing class of ten at half its uniform share that takes 138
labels; seven missing classes of ten are told apart in 20, from the first batch.

Example::

    >>> unused_head_classes([300, 250, 280], classes=10)["unused"]
    7
    >>> unused_head_classes([30, 25, 28], classes=10)["unused"]   # seven classes absent from 83 labels
    7
    >>> unused_head_classes([3, 2, 2], classes=10) is None   # too few labels to say a class never occurs
    True
    >>> unused_head_classes([300, 250, 1], classes=4) is None   # a long tail: the missing class may be rarer still
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

#: Classes with a combined share q are all absent from N labels with probability (1 - q)^N <= exp(-N q); this
#: much N * q makes that below 1 / 1000.
ABSENCE_EVIDENCE = math.log(1000)


def unused_head_classes(counts: Sequence[float], classes: int, smoothing: float = 0.0) -> Optional[dict[str, Any]]:
    """Figures when the labels counted use fewer classes than the head predicts (and enough labels were counted to
    say that the missing ones are not merely rare), else None.

    ``smoothing_mass_on_unused`` is the share of each smoothed target spread over classes that never occur.

    >>> round(unused_head_classes([400, 400, 400], 10, smoothing=0.1)["smoothing_mass_on_unused"], 3)
    0.07
    >>> unused_head_classes([400, 400, 400], 3) is None
    True
    """
    counts = [float(c) for c in counts][:classes]
    counts += [0.0] * max(0, classes - len(counts))
    total = sum(counts)
    used = [i for i, c in enumerate(counts) if c > 0]
    unused = classes - len(used)
    if classes < 2 or unused <= 0 or total <= 0:
        return None
    # The share the missing classes would have at least: half their uniform share, or half the rarest seen.
    rarest = min(counts[i] for i in used) / total
    share = unused * min(1 / (2 * classes), rarest / 2)
    if total * share < ABSENCE_EVIDENCE:
        return None
    return {"num_classes": classes, "classes_used": len(used), "unused": unused, "labels": int(total),
            "unused_classes": [i for i, c in enumerate(counts) if c == 0][:20],
            "smoothing_mass_on_unused": round(smoothing * unused / classes, 6)}


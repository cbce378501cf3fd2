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

Example::

    >>> unused_head_classes([300, 250, 280], classes=10)["unused"]
    7
    >>> unused_head_classes([30, 25, 28], classes=10) is None   # too few labels to say a class never occurs
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

#: A class with at least half its uniform share (1 / 2C) is absent from N labels with probability
#: (1 - 1/2C)^N <= exp(-N / 2C); this many labels per head output make that below 1 / 1000.
LABELS_PER_OUTPUT = 2 * math.log(1000)


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
    if classes < 2 or unused <= 0 or total < LABELS_PER_OUTPUT * classes:
        return None
    return {"num_classes": classes, "classes_used": len(used), "unused": unused, "labels": int(total),
            "unused_classes": [i for i, c in enumerate(counts) if c == 0][:20],
            "smoothing_mass_on_unused": round(smoothing * unused / classes, 6)}


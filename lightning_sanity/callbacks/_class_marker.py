"""``target-leakage`` glue for a token that marks one class at the end of its texts
(:func:`lightning_sanity.checks.class_marker.class_marker`), on the first training batch; called from
:mod:`lightning_sanity.callbacks._target_inputs` when no token marks every class.

Usage::

    report_class_marker(callback, trainer, ids, y, mask)   # True when it reported
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.checks.class_marker import class_marker

CHECK = "target-leakage"
ADVICE = ("Build each sample's input from what is known at prediction time only: cut event logs and histories at "
          "the prediction date (`day < cutoff`, not the export's last day), and never append a record that exists "
          "because of the outcome (a cancellation, a diagnosis, a verbalised label).")


def report_class_marker(callback: Any, trainer: Any, ids: torch.Tensor, y: torch.Tensor,
                        mask: Optional[torch.Tensor]) -> bool:
    marks = class_marker(ids, y, mask)
    callback._ran[CHECK].append("no token at the end of the texts marks exactly the samples of one class")
    if not marks:
        return False
    callback._found.add(CHECK)
    callback.report(
        trainer, CHECK, "error",
        f"In the first training batch, one token is present in every sample of a class and in no other sample, at "
        f"the same place from the end of every one of them while their lengths vary (class: token {marks}), beyond "
        "chance: something recorded because of the outcome was appended to the input (an event after the "
        "prediction date, the label itself), so the model reads the answer and fails where the input stops "
        "before it.",
        ADVICE, where="input tokens", key="class-marker",
        data={"tokens": {str(k): v for k, v in marks.items()}, "samples": int(ids.shape[0])},
    )
    return True

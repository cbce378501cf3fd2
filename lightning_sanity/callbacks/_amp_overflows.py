"""fp16 mixed precision: gradient overflows are the GradScaler's business, until they stop the run from learning.

The scaler halves its scale at every overflow and skips that step, which is how it finds its scale: an overflow now
and then is reported as ``info``. A scale below :data:`AMP_MIN_SCALE` (gradients overflow float16 even unscaled) or
:data:`AMP_MAX_CONSECUTIVE` overflowing steps in a row (no update is applied any more) is an error.
:class:`~lightning_sanity.callbacks.nonfinite.NonFiniteSentinel` calls :meth:`AmpOverflows._amp_overflow` when a
step's only non-finite values are gradients and a scaler is in use.

Example::

    >>> from lightning_sanity.callbacks.nonfinite import NonFiniteSentinel
    >>> issubclass(NonFiniteSentinel, AmpOverflows)
    True
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl

from lightning_sanity.findings import Severity

CHECK = "non-finite"
#: A scale below 1 means gradients overflow fp16 even unscaled; this many overflowing steps in a row means the
#: run makes no progress (the scale started at 2**16, so it would be far below 1 by then anyway).
AMP_MIN_SCALE = 1.0
AMP_MAX_CONSECUTIVE = 20


class AmpOverflows:
    """Counts fp16 overflow steps (``_amp_overflows``, ``_amp_consecutive``, reset by the callback) and reports them."""

    _amp_overflows = 0
    _amp_consecutive = 0

    def _amp_overflow(self, trainer: "pl.Trainer", scaler: Any, origin: dict[str, Any]) -> None:
        self._amp_overflows += 1
        self._amp_consecutive += 1
        scale = float(scaler.get_scale())
        stuck = scale < AMP_MIN_SCALE or self._amp_consecutive >= AMP_MAX_CONSECUTIVE
        if not trainer.is_global_zero:
            return
        if stuck:
            self.report(
                trainer, CHECK, Severity.ERROR,
                f"Mixed-precision gradients overflowed in {self._amp_consecutive} steps in a row and the loss scale "
                f"fell to {scale:.3g}: the scaler skips every update, so training makes no progress.",
                "Gradients overflow float16 even unscaled: lower the learning rate, add gradient clipping, keep "
                "overflow-prone ops (exp, softmax, large matmuls, losses) in float32, or train in bf16-mixed.",
                where=origin["where"], key="amp-stuck",
                data={"kind": "gradient", "loss_scale": scale, "consecutive": self._amp_consecutive},
            )
        else:
            self.report(
                trainer, CHECK, Severity.INFO,
                f"Mixed-precision gradients overflowed and the GradScaler skipped the step (loss scale now {scale:.3g}); "
                "an occasional overflow is how the scaler finds its scale.",
                "Nothing to do unless this repeats often; then keep overflow-prone ops in float32 or lower the "
                "learning rate.",
                where=None, key="amp-overflow", data={"kind": "amp-overflow", "loss_scale": scale},
            )

"""``non-finite`` in validation only: NaN or Inf in what the validation step returns or logs while training stays
finite (glue, mixed into :class:`~lightning_sanity.callbacks.nonfinite.NonFiniteSentinel`).

Code that runs in eval mode only can break where training never goes: an attention mask that leaves a row with no
key to attend to (a padding mask combined with a causal mask; in training, dropout or another path hides it), a
``log`` of a metric that is 0 on a batch, a division by an empty count. Early stopping and checkpointing on such a
metric then silently compare NaNs.

Cost: per validation batch one ``isfinite`` reduction on the step's returned loss (or outputs), kept on the device;
one host read per validation run, with the logged validation metrics (already host values in
``trainer.callback_metrics`` or 0-d tensors read with them).
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any, Optional

import torch
from typing_extensions import override

from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)

_CHECK = "non-finite"
#: "val", "valid", "validation" or "eval" as a word of a metric name (``val_loss``, ``loss/val``, ``eval_acc``).
_VAL_WORD = re.compile(r"(^|[^a-z])e?val(id|idation)?([^a-z]|$)")


def validation_metric_names(metrics: dict[str, Any]) -> list[str]:
    """Logged metric names that belong to validation (``val`` / ``valid`` / ``eval`` as a word, not ``train``).

    >>> validation_metric_names({"val_loss": 1, "train_loss": 2, "valid/acc": 3, "eval_f1": 4, "interval_s": 5})
    ['val_loss', 'valid/acc', 'eval_f1']
    """
    return [k for k in metrics if _VAL_WORD.search(k.lower()) and "train" not in k.lower()]


def nonfinite_values(metrics: dict[str, Any], names: list[str]) -> dict[str, float]:
    """The named metrics whose value is NaN or Inf (0-d tensors or numbers; other values are left out)."""
    bad: dict[str, float] = {}
    for name in names:
        value = metrics.get(name)
        if isinstance(value, torch.Tensor):
            if value.numel() != 1 or not value.is_floating_point():
                continue
            value = float(value)
        if isinstance(value, float) and not math.isfinite(value):
            bad[name] = value
    return bad


class _ValNonFinite:
    """The validation half of ``non-finite``; the host class provides ``report``, ``detail`` and ``_broken`` /
    ``_detections`` (training already went non-finite: validation following it says nothing new)."""

    def _val_reset(self) -> None:
        self._val_flag: Optional[torch.Tensor] = None
        self._val_runs = 0  # validation runs after training started, checked
        self._val_bad_runs = 0
        self._val_first: Optional[dict[str, Any]] = None

    def _training_nonfinite(self) -> bool:
        return bool(getattr(self, "_broken", False) or getattr(self, "_detections", 0))

    @override
    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        if trainer.sanity_checking or self._training_nonfinite():
            return
        try:
            out = outputs.get("loss", None) if isinstance(outputs, dict) else outputs
            if isinstance(out, torch.Tensor) and out.is_floating_point() and out.numel():
                bad = ~torch.isfinite(out.detach()).all()  # on the device: read once at validation end
                self._val_flag = bad if self._val_flag is None else self._val_flag | bad.to(self._val_flag.device)
        except Exception:  # a diagnostic never loses the run
            log.debug("non-finite: validation output not readable", exc_info=True)

    @override
    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        flag, self._val_flag = self._val_flag, None
        if self._training_nonfinite():
            return
        try:
            metrics = dict(trainer.callback_metrics)
            bad = nonfinite_values(metrics, validation_metric_names(metrics))
            returned = flag is not None and bool(flag)
            self._val_runs += 1
            if not bad and not returned:
                return
            self._val_bad_runs += 1
            if self._val_first is not None:
                return
            self._val_first = {"epoch": trainer.current_epoch, "global_step": trainer.global_step}
            what = ", ".join(f"`{k}` = {v}" for k, v in bad.items()) or "the loss the validation step returns"
            self.report(
                trainer, _CHECK, Severity.ERROR,
                f"NaN or Inf in validation only: {what} after epoch {trainer.current_epoch} "
                f"(global step {trainer.global_step}), while every training loss and gradient so far was finite. "
                "Code that runs in eval mode only produces NaN or Inf; early stopping, checkpointing and LR "
                "schedulers that monitor it compare NaNs.",
                "Look at what differs in eval: an attention mask that leaves a row with no key to attend to (a "
                "padding mask combined with a causal mask gives softmax over all -inf: use a large negative number "
                "instead of -inf, or never mask a query's own position), a `log` or division of a metric that can "
                "be 0, eval-only branches (`if not self.training`).",
                where="validation", key="validation-only",
                data={"kind": "validation", "metrics": {k: str(v) for k, v in bad.items()},
                      "returned_nonfinite": returned, "epoch": trainer.current_epoch,
                      "global_step": trainer.global_step})
        except Exception:  # a diagnostic never loses the run
            log.debug("non-finite: validation check failed", exc_info=True)

    def _val_detail(self) -> Optional[str]:
        if not self._val_runs:
            return None
        text = f"{self._val_runs} validation run(s) checked"
        return text + (f", {self._val_bad_runs} non-finite" if self._val_bad_runs else "")

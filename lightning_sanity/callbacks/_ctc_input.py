"""The loss inspector's ``loss-input`` findings for ``ctc_loss`` (glue, no math: that is
:mod:`lightning_sanity.checks.ctc`).

The first step's watch sees the ``F.ctc_loss`` call (``nn.CTCLoss`` calls it too) before it runs: an input that is
not log-probabilities over its class axis (raw logits, or a softmax), and targets that hold the blank index.
Read once, on the first step's tensors; later steps cost nothing.
"""

from __future__ import annotations

import inspect
from typing import Any, Optional

import torch
import torch.nn.functional as F

from lightning_sanity.checks import ctc as CTC
from lightning_sanity.findings import Severity

_SIGNATURE = inspect.signature(F.ctc_loss)

#: Why ``initial-loss`` is skipped when the first step's loss is a CTC loss.
BASELINE_UNKNOWN = ("ctc_loss: no input-independent baseline is known (the best constant frame distribution depends "
                    "on every target's length and number of alignments); pass `expected_loss=` to judge the first loss")


def first_call(cb: Any, trainer: Any, args: tuple, kwargs: dict, where: Optional[str]) -> Optional[str]:
    """Judge one ``ctc_loss`` call of the first step; the ``loss-input`` detail to show when it passes."""
    bound = _SIGNATURE.bind(*args, **(kwargs or {}))
    bound.apply_defaults()
    a = bound.arguments
    log_probs, targets = a.get("log_probs"), a.get("targets")
    if not isinstance(log_probs, torch.Tensor):
        return None
    classes = int(log_probs.shape[-1]) if log_probs.dim() else 0
    problem = CTC.ctc_input_problem(log_probs)
    if problem is not None:
        if problem["kind"] == "probabilities":
            msg = ("ctc_loss was given probabilities (rows in [0, 1] that sum to 1: a softmax), but it reads its input "
                   "as log-probabilities: the loss and its gradients are meaningless.")
        else:
            msg = (f"ctc_loss was given scores that are not log-probabilities over its {classes} classes (the "
                   f"logsumexp of a frame's row is up to {problem['max_abs_logsumexp']:.3g}, median "
                   f"{problem['median_abs_logsumexp']:.3g}, not 0): raw logits without log_softmax. ctc_loss does "
                   "not normalise them, so the loss is unbounded below and falls by inflating the scores on the "
                   "target's paths instead of telling the symbols apart.")
        cb.report(trainer, "loss-input", Severity.ERROR, msg,
                  "Apply `log_softmax(dim=-1)` over the class axis before ctc_loss (`(T, N, C)` log-probabilities), "
                  "e.g. `F.ctc_loss(logits.log_softmax(-1).transpose(0, 1), ...)`.",
                  where=where, key="ctc-input", data={"loss": "ctc_loss", **problem})
    blank = a.get("blank", 0)
    try:
        found = CTC.blank_in_targets(targets, a.get("target_lengths"), int(blank))
    except Exception:  # lengths in a form we cannot read: say nothing
        found = None
    if found is not None:
        cb.report(trainer, "loss-input", Severity.ERROR,
                  f"ctc_loss targets hold the blank index ({found['blank']}) {found['count']} time(s) among "
                  f"{found['symbols']} target symbols: CTC reserves the blank for 'no symbol here', so those labels "
                  "can never be emitted.",
                  "Reserve one class index for the blank that no label uses (shift the labels by one, or pass "
                  "`blank=` the index your vocabulary leaves free), and count only real symbols in `target_lengths`.",
                  where=where, key="ctc-blank", data={"loss": "ctc_loss", **found})
    if problem is None and found is None:
        return f"ctc_loss: log-probabilities over {classes} classes (every frame's logsumexp is 0), blank {blank}"
    return None

"""The ``non-finite`` finding: what the first NaN/Inf of a step was, said as a message, advice and report data.

The sentinel (:mod:`lightning_sanity.callbacks.nonfinite`) detects and diagnoses on the device; this module turns
the diagnosis (host figures only) into the finding's text, so the wording can be read and tested without a
Trainer.

Example::

    >>> origin = {"rank": 0, "kind": "loss", "where": "loss", "loss": float("nan")}
    >>> severity, message, advice, data = nonfinite_finding(
    ...     origin, [origin], "stop", None, epoch=0, batch_idx=3, step=3, world=1, precision="32-true",
    ...     accumulate_grad_batches=1)
    >>> message
    'The training loss became nan at epoch 0, batch 3 (global step 3); training was stopped.'
"""

from __future__ import annotations

import math
from typing import Any, Optional

from lightning_sanity.findings import Severity

_REPLAY_HOW = (
    "Replay the step with `lightning_sanity.replay(<log_dir>/{replay}, YourModule())` or "
    "`python -m lightning_sanity replay <log_dir>/{replay} --model package.module:YourModule` to name the first "
    "module and autograd op that produced it"
)


def _number(value: Optional[float]) -> Any:
    """Floats for the JSON report: NaN and Inf as strings (strict JSON has no NaN)."""
    if value is None:
        return None
    return value if math.isfinite(value) else str(value)


def nonfinite_finding(
    origin: dict[str, Any], views: list[dict[str, Any]], action: str, replay: Optional[str], *, epoch: int,
    batch_idx: int, step: int, world: int, precision: str, accumulate_grad_batches: int,
) -> tuple[Severity, str, str, dict[str, Any]]:
    """Severity, message, advice and report data for the first non-finite value of a step.

    ``origin``: the diagnosis of the rank where it started (``kind`` is ``"loss"``, ``"gradient"`` or
    ``"weights"``); ``views``: every rank's diagnosis; ``action``: ``"stop"``, ``"skip"`` or ``"warn"``;
    ``replay``: the step's replay bundle, relative to the log directory, if one was written.
    """
    on_rank = f" on rank {origin['rank']} of {world}" if world > 1 else ""
    when = f"at epoch {epoch}, batch {batch_idx} (global step {step}){on_rank}"
    kind = origin["kind"]
    outcome = {
        "stop": "training was stopped",
        "skip": "the update was skipped (its gradients dropped)",
        "warn": "training went on with this update (on_nonfinite='warn')",
    }[action]
    if kind == "loss":
        message = f"The training loss became {origin['loss']} {when}; {outcome}."
        cause = ("look for log, exp, sqrt, pow or a division without an epsilon or clamp in the model and loss, "
                 "and lower the learning rate (or clip gradients) if the loss was growing before")
    elif kind == "gradient":
        loss = origin.get("loss")
        loss_text = f"{loss:.4g}" if isinstance(loss, float) and math.isfinite(loss) else str(loss)
        message = (f"The gradient of `{origin['where']}` ({origin['parameter']}: {origin['nan']} NaN and "
                   f"{origin['inf']} Inf of {origin['numel']} values) became non-finite {when} while the loss was "
                   f"finite ({loss_text}); {outcome}.")
        cause = ("typical causes are sqrt or a norm at 0, log of 0, pow with a fractional exponent of a negative "
                 "number, a division by something that can be 0, or torch.where over a branch that is inf (mask "
                 "the input, not the output); gradient clipping does not repair a NaN")
    else:
        message = (f"The weights `{origin['where']}` ({origin['nan']} NaN and {origin['inf']} Inf of "
                   f"{origin['numel']} values) became non-finite in the update before global step {step}"
                   f"{on_rank}; {outcome}.")
        cause = ("the optimizer made them from finite gradients: check the learning rate, the optimizer's eps "
                 "(Adam with eps=0 divides 0 by 0) and any code that edits weights after the step")
    advice = (_REPLAY_HOW.format(replay=replay) + "; " if replay else "") + cause + "."
    advice = advice[0].upper() + advice[1:]
    ranks = sorted({v["rank"] for v in views if v["kind"] == kind})
    data = {
        "kind": kind,
        "rank": origin["rank"],
        "ranks": ranks,
        "world_size": world,
        "loss": _number(origin.get("loss")),
        "action": action,
        "precision": precision,
    }
    for field in ("parameter", "parameters", "nan", "inf", "numel"):
        if field in origin:
            data[field] = origin[field]
    if accumulate_grad_batches > 1:
        data["accumulate_grad_batches"] = accumulate_grad_batches
    severity = Severity.WARNING if action == "skip" else Severity.ERROR
    return severity, message, advice, data

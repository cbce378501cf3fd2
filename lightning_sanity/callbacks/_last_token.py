"""``target-leakage`` glue for a label cut from the end of a sequence the model still reads whole (a session
recommender given ``sessions, lengths`` while its label is ``sessions[b, lengths - 1]``).

Called by :class:`~lightning_sanity.callbacks.leakage.LeakageChecks` after the first training step with the model
call it observed and the class targets of the step's loss calls. When a label equals its input's last real token
in every sample (:func:`lightning_sanity.checks.last_token.last_token_positions`), that token alone is changed in
the call: a model given the sequence up to the element before the label (``lengths - 1``, a mask) keeps exactly
the same scores; one whose scores move reads its answer. Cost: two eval-mode forwards of the first batch, once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

import lightning.pytorch as pl
import torch

from lightning_sanity.batch import map_tensors, tensors_of
from lightning_sanity.callbacks._extra_forward import reading_probe
from lightning_sanity.callbacks._model_call import run_call
from lightning_sanity.checks import last_token as LT
from lightning_sanity.checks import leakage as L
from lightning_sanity.replays.rng import isolate_rng

log = logging.getLogger(__name__)
CHECK = "target-leakage"
ADVICE = ("Cut the label out of the input: feed the sequence up to the element before the one predicted "
          "(`pack_padded_sequence(..., lengths - 1)`, the last real token masked or set to padding), as it is at "
          "prediction time, when that element does not exist yet.")


def check_last_token_label(callback: Any, trainer: "pl.Trainer", batch: Any, call: Optional[dict[str, Any]],
                           classes: list[tuple[torch.Tensor, int]]) -> None:
    """Report a model that reads the label sitting at its input's last real token; silent otherwise."""
    if call is None or not callback.is_enabled(CHECK) or CHECK in callback._found:
        return
    try:
        _check(callback, trainer, batch, call, classes)
    except Exception:  # a check must never lose the user's run, nor the other leakage tests
        log.debug("last-token label test failed", exc_info=True)


def _check(callback: Any, trainer: "pl.Trainer", batch: Any, call: dict[str, Any],
           classes: list[tuple[torch.Tensor, int]]) -> None:
    x = call.get("x")
    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
    for label, width in classes:
        if not isinstance(x, torch.Tensor) or label.shape[:1] != x.shape[:1]:
            continue
        last = LT.last_token_positions(x, label, mask)
        if last is None:
            continue
        with isolate_rng(), reading_probe(trainer.lightning_module, trainer):
            found = _moved(callback, call, x, last, width, mask)
        if found is None:
            return
        callback._ran[CHECK].append(f"`{call['how']}` does not read the label at its input's last real token")
        change, scale, moved = found
        if not moved:
            return
        callback._found.add(CHECK)
        labels = int(torch.unique(label[label >= 0]).numel())
        callback.report(
            trainer, CHECK, "error",
            f"In every sample of the first training batch the label is the input's last real token ({labels} "
            f"distinct labels, at the position of each sample's length - 1), and `{call['how']}` reads it: changing "
            f"only that token moves its scores by up to {change:.3g} (scale {scale:.3g}). The model is fed the "
            "element it must predict, so it learns to echo it, and fails when that element is not known yet.",
            ADVICE, where=call["where"], key="last-token-label",
            data={"labels": labels, "samples": int(x.shape[0]), "change": change, "scale": scale,
                  "called_as": call["how"]},
        )
        return


def _moved(callback: Any, call: dict[str, Any], x: torch.Tensor, last: torch.Tensor, width: int,
           mask: Any) -> Optional[tuple[float, float, bool]]:
    """``(change, scale, more than round-off)`` of the ``(B, width)`` scores when only each row's last real token
    changes; None when the call puts out no such scores."""
    rows = torch.arange(x.shape[0])
    real = LT.real_positions(x.detach().cpu(), mask.detach().cpu() if isinstance(mask, torch.Tensor) else None)
    new = x.clone()
    new[rows.to(x.device), last.to(x.device)] = LT.other_tokens(x, rows, last, real, callback._generator)
    args, kwargs = call["args"], call["kwargs"]
    base = tensors_of(run_call(call, args, kwargs))
    moved = tensors_of(run_call(call, *map_tensors((args, kwargs), lambda v: new if v is x else v)))
    n = int(x.shape[0])
    for a, b in zip(base, moved):
        if a.is_floating_point() and a.shape == (n, width) and b.shape == a.shape:
            finite = torch.isfinite(a) & torch.isfinite(b)
            diff = torch.where(finite, (a - b).abs(), torch.zeros_like(a)).float()
            scale = float(torch.where(finite, a.abs(), torch.zeros_like(a)).float().max())
            change = float(diff.max())
            return change, scale, L.depends(change, scale, a.dtype in (torch.float16, torch.bfloat16))
    return None

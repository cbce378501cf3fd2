"""``target-leakage`` glue for masked modelling whose output reads the hidden values (an MAE-style leak).

Called by :class:`~lightning_sanity.callbacks.leakage.LeakageChecks` after the first training step with the
observed model call and the step's loss targets. It applies when the call is given the float input ``x`` and a
boolean mask over some of ``x``'s axes (``self(frames, mask)``: mask ``(B, T)`` over frames ``(B, F, T)``), and a
loss target is ``x``'s values at that mask (``frames.transpose(1, 2)[mask]``, ``x[mask]``): the hidden positions
are the scored ones. The values of ``x`` at the hidden positions are then changed (noise from the callback's own
generator) and the outputs there compared with the unchanged run: a correct masked model gives identical values
(it never reads them), a residual from the unmasked input moves them one for one. The judgement is
:mod:`lightning_sanity.checks.masked_reads`. A denoising autoencoder (no mask argument), a token model (integer
input), a mask the batch carries and a padding mask (the unscored values one constant) are not judged. Cost: two
eval-mode forward passes on the first 8 samples, once.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import lightning.pytorch as pl
import torch

from lightning_sanity.batch import map_tensors
from lightning_sanity.callbacks._extra_forward import reading_probe
from lightning_sanity.callbacks._model_call import run_call, storage_of
from lightning_sanity.checks import flow
from lightning_sanity.checks import masked_reads as M
from lightning_sanity.replays.rng import isolate_rng

log = logging.getLogger(__name__)

#: Samples of the first batch the two forwards run on.
_SAMPLES = 8
_HALF = (torch.float16, torch.bfloat16)
CHECK = "target-leakage"


def check_masked_inputs(callback: Any, trainer: "pl.Trainer", batch: Any, call: Optional[dict[str, Any]],
                        targets: list) -> None:
    """Run the masked-input test on the first step's model ``call``; report outputs that read the hidden values."""
    try:
        if call is not None and callback.is_enabled(CHECK) and CHECK not in callback._found:
            _check(callback, trainer, trainer.lightning_module, batch, call, targets)
    except Exception:  # a check must never lose the user's run; the skip reason already set stays
        log.debug("masked-input target-leakage test failed", exc_info=True)


def _masks(call: dict[str, Any], x: torch.Tensor, batch: Any) -> list[torch.Tensor]:
    """The boolean tensors of the call drawn in the step: a mask the batch carries (which values are missing, which
    are padding) may mark the positions a model reads by design (an imputing autoencoder scored on the observed
    values), while a masked-modelling mask is drawn at random for the step."""
    carried: set[int] = set()
    map_tensors(batch, lambda t: carried.add(storage_of(t) or 0) or t)
    passed = [v for v in (*call["args"], *call["kwargs"].values()) if isinstance(v, torch.Tensor)]
    return [v for v in passed if v is not x and v.dtype == torch.bool and v.dim() >= 1 and v.shape[0] == x.shape[0]
            and (storage_of(v) or -1) not in carried]


def _check(callback: Any, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
           call: dict[str, Any], targets: list) -> None:
    x = call.get("x")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        return
    for mask in _masks(call, x, batch):
        found = M.scored_selection(x, mask, targets)
        if found is not None:
            return _judge(callback, trainer, pl_module, call, x, mask, *found)


def _judge(callback: Any, trainer: "pl.Trainer", pl_module: "pl.LightningModule", call: dict[str, Any],
           x: torch.Tensor, mask: torch.Tensor, axes: tuple[int, ...], scored: torch.Tensor) -> None:
    size = int(x.shape[0])
    keep = min(size, _SAMPLES) if bool(scored[:_SAMPLES].any()) else size
    memo: dict[int, torch.Tensor] = {}

    def cut(t: torch.Tensor) -> torch.Tensor:  # one copy per tensor: the input and mask stay marked by identity
        if id(t) not in memo:
            memo[id(t)] = t[:keep].detach() if t.dim() and t.shape[0] == size else t
        return memo[id(t)]

    args, kwargs = map_tensors((call["args"], call["kwargs"]), cut)
    kx, kscored = cut(x), scored[:keep]
    new_x = M.perturb_at(kx, axes, kscored, callback._generator)
    new_args, new_kwargs = map_tensors((args, kwargs), lambda v: new_x if v is kx else v)
    with isolate_rng(), reading_probe(pl_module, trainer):
        base = flow.first_output_tensor(run_call(call, args, kwargs), keep)
        other = flow.first_output_tensor(run_call(call, new_args, new_kwargs), keep)
    if base is None or other is None or base.shape != other.shape:
        return
    out_axes = axes if base.shape == kx.shape else next(iter(M.mask_axes(tuple(base.shape), tuple(kscored.shape))),
                                                        None)
    if out_axes is None:  # the output is not laid out over the masked positions (a pooled embedding)
        return
    change, scale, moved = M.hidden_change(base, other, out_axes, kscored, half=base.dtype in _HALF)
    hidden = int(kscored.sum())
    callback._skips.pop(CHECK, None)
    callback._ran[CHECK].append(f"outputs at the {hidden} masked positions the loss scores independent of the "
                                "input values there")
    if not moved:
        return
    callback._found.add(CHECK)
    callback.report(
        trainer, CHECK, "error",
        f"The output at the masked positions the loss scores changes by up to {change:.3g} (output scale "
        f"{scale:.3g}) when only the input values at those positions change (`{call['how']}`, mask over input axes "
        f"{list(axes)}, {hidden} positions of the first {keep} samples): the model reads the values it must "
        "reconstruct (a residual or skip from the unmasked input, a mask applied after the encoder, the original "
        "input passed on), so its masked loss goes to zero and its features learn nothing.",
        M.ADVICE, where=call.get("where"), key="masked-inputs",
        data={"change": change, "scale": scale, "mask_axes": list(axes), "positions": hidden,
              "called_as": call["how"]},
    )

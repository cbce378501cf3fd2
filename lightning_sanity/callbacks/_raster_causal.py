"""``causal-leakage`` glue for autoregressive models whose target is their own input (a PixelCNN, a MADE).

Called by :class:`~lightning_sanity.callbacks.leakage.LeakageChecks` after the first training step, when the step
made no next-element task (no target shifted by one) but a recognised loss call compared the model's output with
the model's input itself, channels-first ``(B, C, H, W)`` or ``(B, C, L)``, or flat ``(B, D)`` (a MADE, read as
``(B, 1, D)``): the set-up of a PixelCNN (and of
every autoencoder). The judgement is :func:`lightning_sanity.checks.raster_causal.raster_self_read`; an autoencoder
reads later pixels and is left alone. Cost: up to 3 + 4 eval-mode forward passes on the first 8 samples, once.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
from lightning_sanity.replays.rng import isolate_rng

from lightning_sanity.batch import map_tensors
from lightning_sanity.callbacks._extra_forward import reading_probe
from lightning_sanity.callbacks._model_call import keep_call, move_call
from lightning_sanity.checks import flow
from lightning_sanity.checks.raster_causal import raster_self_read

log = logging.getLogger(__name__)

#: Samples of the first batch the perturbations run on.
_SAMPLES = 8
_HALF = (torch.float16, torch.bfloat16)
CHECK = "causal-leakage"


def _is_own_input(x: torch.Tensor, targets: list) -> bool:
    for t in targets:
        if t is x:
            return True
        if isinstance(t, torch.Tensor) and t.shape == x.shape and t.device == x.device and torch.equal(t, x):
            return True
    return False


def check_raster_self_read(callback: Any, trainer: "pl.Trainer", call: Any, targets: list) -> None:
    """Run the raster test when the loss's target is the model call's input; report a model reading its answer."""
    try:
        _check(callback, trainer, trainer.lightning_module, call, targets)
    except Exception:  # a check must never lose the user's run; the skip reason already set stays
        log.debug("raster causal-leakage test failed", exc_info=True)


def _check(callback: Any, trainer: "pl.Trainer", pl_module: "pl.LightningModule", call: Any, targets: list) -> None:
    if call is None or not callback.is_enabled(CHECK) or CHECK in callback._found:
        return
    x = call.get("x")
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.dim() not in (2, 3, 4):
        return
    if not _is_own_input(x, targets):
        return
    kept = move_call(keep_call(call, _SAMPLES), pl_module.device)
    kx, size = kept["x"], int(kept["x"].shape[0])
    flat = kx.dim() == 2  # a MADE: one row of values, each predicted from those before it

    def model(new: torch.Tensor) -> torch.Tensor:
        new = new.reshape(kx.shape) if flat else new
        args, kwargs = map_tensors((kept["args"], kept["kwargs"]), lambda v: new if v is kx else v)
        out = flow.first_output_tensor(kept["fn"](args, kwargs), size)
        return out[:, None] if flat and isinstance(out, torch.Tensor) and out.dim() == 2 else out

    with isolate_rng(), reading_probe(pl_module, trainer):
        generator = torch.Generator().manual_seed(1234)
        result = raster_self_read(model, kx[:, None] if flat else kx, generator, half=kx.dtype in _HALF)
    if result is None:
        return
    pos = result.position
    at = f"(row {pos[0]}, column {pos[1]})" if len(pos) == 2 else str(pos[0])
    if result.kind == "causal":
        callback._skips.pop(CHECK, None)
        callback._ran[CHECK].append(f"target is the input: outputs at pixels <= {at} independent of later pixels, "
                                    f"and the output at {at} independent of its own input pixel")
        return
    if result.kind != "reads-own":
        return  # reads later pixels (an autoencoder) or has no context: not an autoregressive model
    callback._skips.pop(CHECK, None)
    callback._found.add(CHECK)
    callback.report(
        trainer, CHECK, "error",
        f"The model's output at position {at} (channel {result.channel}) changes by up to {result.change:.3g} "
        f"(output scale {result.scale:.3g}) when only its own input at {at} changes, while no input after it "
        f"matters: an autoregressive model trained with its input as target reads the value it must predict "
        f"(`{call['how']}`), so its loss falls by copying and sampling from it fails.",
        "Hide the current position from the first layer: a PixelCNN's first masked convolution needs mask type "
        "'A' (excludes the centre pixel), only the later layers type 'B'; a causal 1-D convolution that predicts its "
        "own input needs its output shifted by one (pad `k` on the left, not `k - 1`); a MADE's output mask needs "
        "the strict inequality (output degree > hidden degree), its hidden masks the non-strict one.",
        where=call.get("where"), key="raster-self-read",
        data={"position": list(result.position), "channel": result.channel, "positions": result.positions,
              "change": result.change, "scale": result.scale, "called_as": call["how"]},
    )

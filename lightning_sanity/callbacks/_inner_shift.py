"""A next-token task whose shift happens inside the model, for :class:`~lightning_sanity.callbacks.leakage.LeakageChecks`.

A GPT-style model may take the token sequence itself and prepend BOS (dropping the last token) inside ``forward``,
so the step's loss compares the output at ``t`` with the very input token at ``t``:
``F.cross_entropy(model(tokens).flatten(0, 1), tokens.flatten())``. An autoencoder or a denoiser has the same loss.
What tells them apart, with the model as it is, on the first batch: a model that shifts its input right by one
hands one of its modules the tokens moved one place right (``[BOS, x_0, ..., x_{T-2}]``) and never reads the
input's last token (it is only ever a target), while a reconstruction model must read it to rebuild it. When both
hold, the task is next-token prediction and ``causal-leakage``'s perturbation test applies: a healthy model's
outputs up to ``t`` are exactly independent of the inputs after ``t``. (A denoiser that hides the last token in
``forward`` reads no shifted copy and is left alone.)

Cost: two eval-mode forward passes of the first batch, once, the first with a pre-hook on each module.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import lightning.pytorch as pl
import torch

from lightning_sanity.batch import map_tensors
from lightning_sanity.callbacks._compiled import hookable_modules
from lightning_sanity.callbacks._extra_forward import reading_probe
from lightning_sanity.callbacks._perturbed_call import PerturbedCall
from lightning_sanity.checks import flow
from lightning_sanity.checks import leakage as L
from lightning_sanity.replays.rng import isolate_rng

log = logging.getLogger(__name__)


def own_token_target(x: Any, targets: list) -> bool:
    """Whether a recorded loss target holds the token input ``x`` (``(B, T)`` integers) itself, any shape of the
    same values, positions below 0 ignored (``F.cross_entropy(out.flatten(0, 1), x.flatten())``).

    >>> import torch
    >>> ids = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]])
    >>> own_token_target(ids, [ids.reshape(-1)]), own_token_target(ids, [ids[:, 1:].reshape(-1)])
    (True, False)
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.is_floating_point() or x.is_complex():
        return False
    for t in targets:
        if isinstance(t, torch.Tensor) and t.numel() == x.numel() and not t.is_floating_point():
            if t.device == x.device and L.same_positions(x, t.detach().reshape(x.shape)):
                return True
    return False


def shifted_inside(callback: Any, trainer: "pl.Trainer", call: Optional[dict[str, Any]], targets: list) -> bool:
    """True when the loss's target is the observed call's token input and no output reads the input's last token:
    the model shifts its input inside (the causal test then runs on this call). False when not, or on any failure."""
    if call is None or not own_token_target(call.get("x"), targets):
        return False
    pl_module = trainer.lightning_module
    try:
        with isolate_rng(), reading_probe(pl_module, trainer):
            return _never_reads_last(callback, call, pl_module)
    except Exception:  # a check must never lose the user's run; the skip reason already set stays
        log.debug("inner-shift test failed", exc_info=True)
        return False


def _never_reads_last(callback: Any, call: dict[str, Any], pl_module: torch.nn.Module) -> bool:
    x = call["x"]
    size, length = int(x.shape[0]), int(x.shape[1])
    if length < 4:  # a causal test needs positions on both sides of the middle
        return False
    shifted: list[bool] = []
    handles = [m.register_forward_pre_hook(lambda _, args, kw: shifted.append(_holds_shift(x, (*args, *kw.values()))),
                                           with_kwargs=True) for _, m in hookable_modules(pl_module)]
    try:
        found = PerturbedCall(callback, call).base(size, length)
    finally:
        for handle in handles:
            handle.remove()
    if found is None or not any(shifted):
        return False
    base, half = found
    new = L.perturb_after(x, length - 2, 1, callback._generator)  # the last position only
    args, kwargs = map_tensors((call["args"], call["kwargs"]), lambda v: new if v is x else v)
    out, _, _ = callback._output(call, args, kwargs, size, length)
    if out is None:
        return False
    change, scale, _ = L.change_up_to(base, flow.strided_units(out, L.COMPARED_UNITS), length - 1)
    return scale > 0 and not L.depends(change, scale, half)


def _holds_shift(x: torch.Tensor, args: tuple) -> bool:
    """Whether a module argument is ``x`` moved one place right along its time axis (a token put in front)."""
    for a in args:
        if (isinstance(a, torch.Tensor) and a is not x and a.shape == x.shape and a.dtype == x.dtype
                and torch.equal(a[:, 1:], x[:, :-1]) and not torch.equal(a, x)):
            return True
    return False

"""Observe the call ``training_step`` makes to the model, and keep it to replay later (for the leakage checks).

A forward pre-hook on every module during one training step records the first module called with the batch's
input tensor itself, with its arguments as the user passed them: the model is then re-run exactly as the user runs
it, including a target argument (``self.model(inputs, target)``, ``self.model(**batch)``), with no guessing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Callable, Optional

import torch
from torch import nn

from lightning_sanity.callbacks._compiled import eager, hookable_modules
from lightning_sanity.batch import map_tensors
from lightning_sanity.checks import flow
from lightning_sanity.checks import leakage as L
from lightning_sanity.replays.rng import seed_global

log = logging.getLogger(__name__)


def on_first_call(module: nn.Module, batch: Any, look: Callable[[tuple, dict], None], handles: list) -> None:
    """Run ``look(args, kwargs)`` once, at ``module``'s first call in the current batch that is not handed ``batch``
    itself (DDP's redirection runs the step through the module's own call, ``module(batch, batch_idx)``): a one-shot
    forward pre-hook, appended to ``handles`` so that the caller removes it if the call never comes. A failing
    ``look`` is logged, never raised: a check must never lose the user's run."""
    def first_call(mod: nn.Module, args: tuple, kwargs: dict) -> None:
        if any(a is batch for a in args):
            return
        handle.remove()
        try:
            look(args, kwargs)
        except Exception:
            log.debug("a look at the model's first call failed", exc_info=True)

    handle = module.register_forward_pre_hook(first_call, with_kwargs=True)
    handles.append(handle)


def watch_calls(model: nn.Module, x: torch.Tensor, y: Optional[torch.Tensor],
                found: Callable[[dict[str, Any]], None], views: bool = False) -> list[Any]:
    """Hooks that hand ``found`` each call of a module of ``model`` that takes ``x`` itself as an argument, as
    ``{"fn", "how", "where", "args", "kwargs", "x", "y", "target"}`` (``y`` only if the call receives it,
    ``target`` the batch's target in any case); returns the hook
    handles to remove. Outer modules are called (and reported) first.

    With ``views``, a call that takes a view of ``x`` (``x[:, :-1]``: the step cuts the model's input from the
    batch) counts too, and its ``"x"`` is that view: one that keeps the batch axis and may add axes (``x[:, None,
    :-1]``: a channel axis for a convolution)."""
    names = {id(m): n for n, m in model.named_modules()}
    storage = storage_of(x) if views else None

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        # Only a call that takes the input tensor itself as an argument: under DDP, Lightning calls the module with
        # the whole batch to redirect its forward to `training_step`, a call that cannot be replayed as a forward.
        passed = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        given = x if any(t is x for t in passed) else None
        if given is None and storage is not None:
            given = next((t for t in passed if t.dim() >= x.dim() and t.shape[0] == x.shape[0]
                          and storage_of(t) == storage), None)
        if given is not None:
            name = names.get(id(module)) or None
            found({"where": name, "how": f"{name or type(module).__name__}(...)",
                   "fn": (lambda a, k, m=eager(module): m(*a, **k)), "args": args, "kwargs": dict(kwargs), "x": given,
                   "y": y if y is not None and any(t is y for t in passed) else None, "target": y})

    return [m.register_forward_pre_hook(hook, with_kwargs=True) for _, m in hookable_modules(model)]


def storage_of(t: torch.Tensor) -> Optional[int]:
    """The address of ``t``'s storage (views of one tensor share it), or None for a tensor without one."""
    try:
        return int(t.untyped_storage().data_ptr()) or None
    except Exception:  # tensors without storage (meta, some subclasses)
        return None


def map_call(call: dict[str, Any], fn: Callable[[torch.Tensor], torch.Tensor]) -> dict[str, Any]:
    """The call with ``fn`` applied once to each of its tensors: a tensor passed twice maps to one result, so the
    input and target stay marked by identity."""
    memo: dict[int, torch.Tensor] = {}

    def once(t: torch.Tensor) -> torch.Tensor:
        if id(t) not in memo:
            memo[id(t)] = fn(t)
        return memo[id(t)]

    args, kwargs = map_tensors((call["args"], call["kwargs"]), once)
    return dict(call, args=args, kwargs=kwargs, x=once(call["x"]),
                y=once(call["y"]) if call["y"] is not None else None)


def keep_call(call: dict[str, Any], keep: int) -> dict[str, Any]:
    """A CPU copy of a call cut to its first ``keep`` samples, the input and target still marked by identity."""
    size = int(call["x"].shape[0])

    def copy(t: torch.Tensor) -> torch.Tensor:
        cut = t[:keep] if size > keep and t.dim() > 0 and t.shape[0] == size else t
        return cut.detach().to("cpu", copy=True)

    kept = map_call(call, copy)
    kept["target"] = None  # the batch's target, for the first look only
    return kept


def move_call(call: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The kept call with its tensors on ``device``, identities preserved."""
    return map_call(call, lambda t: t.to(device))


_HALF = (torch.float16, torch.bfloat16)


def run_call(call: dict[str, Any], args: tuple, kwargs: dict) -> Any:
    """Re-run a kept call with ``args``/``kwargs``, drawing the same random numbers every time (the caller runs it
    inside ``isolate_rng``): masks that a module draws even in eval mode (a ``self.train`` guard forgotten) are not
    leakage."""
    seed_global(0)
    return call["fn"](args, kwargs)


def call_output(call: dict[str, Any], args: tuple, kwargs: dict, size: int, length: int,
                axis: int) -> Optional[tuple[Optional[torch.Tensor], Optional[torch.Tensor], bool]]:
    """Re-run a kept call with ``args``/``kwargs`` (:func:`run_call`): ``(the output as (batch, positions, units) or
    None, the loss the model computed or None, whether the output is half precision)``; None when no output tensor
    has the batch size."""
    result = run_call(call, args, kwargs)
    logits = getattr(result, "logits", None)
    if not isinstance(logits, torch.Tensor) and isinstance(result, Mapping):
        logits = result.get("logits")
    out = logits if isinstance(logits, torch.Tensor) else flow.first_output_tensor(result, size)
    if out is None:
        return None
    view = L.positions_view(out, size, length, axis if out.dim() > axis else None)
    loss = getattr(result, "loss", None)
    if not isinstance(loss, torch.Tensor) and isinstance(result, Mapping):
        loss = result.get("loss")
    return view, (loss if isinstance(loss, torch.Tensor) and loss.numel() == 1 else None), out.dtype in _HALF

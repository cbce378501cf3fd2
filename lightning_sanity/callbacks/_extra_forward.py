"""Running the model outside the user's step without an observer effect: every module in eval mode with its own
flag put back, and the trainer's precision context (walking the tensors of nested inputs is
:func:`lightning_sanity.batch.map_tensors`).

Shared by the first-batch flow checks (:mod:`~lightning_sanity.callbacks.model_checks`), the leakage checks, the
fixed-batch snapshots and the replayed model call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Callable

import lightning.pytorch as pl
import torch
from torch import nn

from lightning_sanity.callbacks._compiled import compiled_children, eager


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode as Lightning's validation sets it, then each module's own ``training`` flag put back.

    Like Lightning's evaluation loop: ``model.eval()`` (so a ``train()`` override, such as one that keeps
    frozen BatchNorm layers in eval mode, acts as it does in validation), and the flags restored directly,
    never through ``train()``, whose overrides could change modes the user had set by hand.
    """
    saved = [(m, m.training) for m in model.modules()]
    compiled = compiled_children(model)  # the probes run the original modules (see _compiled)
    try:
        model.eval()
        for parent, name, child in compiled:
            parent._modules[name] = eager(child)
        yield
    finally:
        for parent, name, child in compiled:
            parent._modules[name] = child
        for m, flag in saved:
            m.training = flag


@contextlib.contextmanager
def training_attention() -> Iterator[None]:
    """PyTorch's attention fast path switched off for the block, then put back as it was.

    ``nn.MultiheadAttention`` and ``nn.TransformerEncoder(Layer)`` take a fused path in eval mode under ``no_grad``
    that reads a float ``mask`` as a boolean one (non-zero = blocked), while the training step's path adds it to
    the scores: ``torch.triu(torch.ones(T, T), 1)`` blocks the future in an extra forward and blocks nothing in
    training. A probe asking what the training step reads must run the path the training step runs.
    """
    mha = getattr(torch.backends, "mha", None)  # torch >= 2.3
    get, set_ = getattr(mha, "get_fastpath_enabled", None), getattr(mha, "set_fastpath_enabled", None)
    if get is None or set_ is None:
        yield
        return
    was = bool(get())
    set_(False)
    try:
        yield
    finally:
        set_(was)


@contextlib.contextmanager
def reading_probe(model: nn.Module, trainer: "pl.Trainer") -> Iterator[None]:
    """An extra forward that asks what the training step's computation reads: ``no_grad``, eval mode, the
    training path of attention (:func:`training_attention`) and the step's precision context."""
    with torch.no_grad(), eval_mode(model), training_attention(), precision_context(trainer):
        yield


@contextlib.contextmanager
def hidden_step_watches() -> Iterator[None]:
    """The suite's first-step watchers (:class:`~lightning_sanity.callbacks._step_watch.StepWatch`) taken off the
    torch function mode stack, the user's own modes left in place and in order, then everything put back.

    An extra forward run from a hook inside the first step is not the user's step: the watchers must not read it
    (a loss call, an input's first use), and it need not pay their Python call per torch call.
    """
    from lightning_sanity.callbacks._step_watch import StepWatch

    stack = torch.overrides._get_current_function_mode_stack()
    if not any(isinstance(m, StepWatch) for m in stack):
        yield
        return
    popped = [torch._C._pop_torch_function_stack() for _ in stack]  # top first
    kept = [m for m in reversed(popped) if not isinstance(m, StepWatch)]
    for mode in kept:
        torch._C._push_on_torch_function_stack(mode)
    try:
        yield
    finally:
        now = torch.overrides._get_current_function_mode_stack()
        added = [torch._C._pop_torch_function_stack() for _ in now][: max(len(now) - len(kept), 0)]
        for mode in reversed(popped):
            if not (isinstance(mode, StepWatch) and not mode.active):  # one stopped meanwhile stays off
                torch._C._push_on_torch_function_stack(mode)
        for mode in reversed(added):  # modes pushed inside stay on top, in their order
            torch._C._push_on_torch_function_stack(mode)


@contextlib.contextmanager
def module_calls(model: nn.Module, enter: Callable[[str, Any], Any], leave: Callable[[str, Any, Any], None],
                 submodules_only: bool = False) -> Iterator[None]:
    """While the block runs, ``enter(name, args)`` before and ``leave(name, entered, output)`` after every module
    call of ``model``, ``entered`` being what ``enter`` returned for that same call (a module called inside itself,
    or again, pairs each end with its own start); every hook is removed after. ``submodules_only`` leaves out the
    model itself.

    Example::

        >>> calls = []
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
        >>> with module_calls(net, lambda name, args: name, lambda name, entered, out: calls.append(entered)):
        ...     _ = net(torch.zeros(1, 2))
        >>> calls
        ['0', '1', '']
    """
    pending: dict[int, list] = {}
    handles: list[Any] = []

    def hooks(name: str) -> tuple[Callable, Callable]:
        def pre(module: nn.Module, args: Any) -> None:
            pending.setdefault(id(module), []).append(enter(name, args))

        def post(module: nn.Module, args: Any, output: Any) -> None:
            started = pending.get(id(module))
            leave(name, started.pop() if started else None, output)

        return pre, post

    try:
        for name, module in model.named_modules():
            if submodules_only and not name:
                continue
            pre, post = hooks(name)
            handles.append(module.register_forward_pre_hook(pre))
            handles.append(module.register_forward_hook(post))
        yield
    finally:
        for handle in handles:
            handle.remove()


def precision_context(trainer: "pl.Trainer") -> Any:
    """The precision plugin's context of a training step (autocast under mixed precision), for an extra forward."""
    plugin = getattr(trainer, "precision_plugin", None)
    context = getattr(plugin, "train_step_context", None)
    return context() if callable(context) else contextlib.nullcontext()

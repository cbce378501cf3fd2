"""Watching a replayed step: the first module, torch call and autograd op whose result is non-finite.

Used only during :func:`lightning_sanity.replays.replay`, never on the training hot path: every module output and
every torch call is inspected, and backward runs under anomaly detection.
"""

from __future__ import annotations

import os
import re
import warnings
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from lightning_sanity.checks.numerics import anomaly_op, is_finite, tensors_in


class _FirstNonFiniteCall(TorchFunctionMode):
    """Records the first torch call whose floating-point result holds a NaN or Inf (the mode is off in here)."""

    def __init__(self) -> None:
        super().__init__()
        self.first: Optional[str] = None

    def __torch_function__(self, func: Callable, types_: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.first is None:
            try:
                if any(not is_finite(t) for _, t in tensors_in(out)):
                    self.first = getattr(func, "__name__", None) or repr(func)
            except Exception:
                pass
        return out


class _ModuleOutputs:
    """Forward hooks on every module: the first one, in execution order, whose output is non-finite."""

    def __init__(self, model: nn.Module) -> None:
        self.first: Optional[str] = None
        self.first_type: Optional[str] = None
        self._handles = [m.register_forward_hook(self._hook(name)) for name, m in model.named_modules()]

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self.first is None and any(not is_finite(t) for _, t in tensors_in(output)):
                self.first, self.first_type = name, type(module).__name__

        return hook

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


class _BackwardWatch:
    """Runs backward with anomaly detection and a hook on every graph node; keeps the first non-finite op."""

    def __init__(self, scale: Optional[float], params: list[Tensor]) -> None:
        self.scale = scale
        self.params = params
        self.first_op: Optional[str] = None
        self.anomaly_op: Optional[str] = None
        self.source: Optional[str] = None
        self.error: Optional[str] = None
        self.ran = False

    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        self.ran = True
        if not isinstance(loss, Tensor) or loss.grad_fn is None:
            return
        root = loss * self.scale if self.scale else loss
        handles = self._hook_graph(root.grad_fn)
        grads_before = [p.grad.clone() if p.grad is not None else None for p in self.params]
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    root.backward(*args, **{**kwargs, "retain_graph": True})
                except RuntimeError as err:
                    op = anomaly_op(str(err))
                    if op is None:
                        self.error = str(err).splitlines()[0]
                        return
                    self.anomaly_op = self.anomaly_op or op
                    # Anomaly mode stopped backward at the op; finish it without, so the gradients can be read
                    # (and a manual-optimization step goes on as it did in training).
                    # The aborted pass may have accumulated some gradients already: start again from before it.
                    for p, g in zip(self.params, grads_before):
                        p.grad = g
                    with torch.autograd.set_detect_anomaly(False):
                        root.backward(*args, **kwargs)
            self.source = self.source or _forward_source(caught)
        finally:
            for h in handles:
                h.remove()

    def _hook_graph(self, root: Any) -> list[Any]:
        handles, seen, stack = [], set(), [root]
        while stack:
            node = stack.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            try:
                handles.append(node.register_hook(self._node_hook(node)))
            except Exception:
                pass
            stack.extend(n for n, _ in getattr(node, "next_functions", ()))
        return handles

    def _node_hook(self, node: Any) -> Callable:
        def hook(grad_inputs: tuple, grad_outputs: tuple) -> None:
            if self.first_op is None and any(g is not None and not is_finite(g) for g in grad_inputs):
                self.first_op = type(node).__name__

        return hook


_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)\n\s*(.*)')


def _forward_source(caught: list) -> Optional[str]:
    """``file.py:42 in forward: return torch.log(x)`` from anomaly mode's forward traceback, user code only."""
    for w in caught:
        text = str(w.message)
        if "Traceback of forward call" not in text:
            continue
        frames = _FRAME.findall(text)
        own = [f for f in frames if not re.search(r"[/\\](torch|lightning|lightning_sanity)[/\\]", f[0])]
        chosen = (own or frames)[-1:] if frames else []
        for file, line, func, code in chosen:
            return f"{os.path.basename(file)}:{line} in {func}: {code.strip()}"
    return None

"""Finiteness of many tensors for the price of one reduction, and where a non-finite value first shows.

The hot path is :func:`finite_flag`: one fused reduction over every tensor given, returning a 0-dim bool tensor
that stays on the device, so the caller decides when (and whether) to pay the host sync. Everything else here runs
only after that flag said something is wrong, and may be slow.

Example::

    >>> import torch
    >>> bool(finite_flag([torch.ones(3), torch.zeros(2, 2)]))
    True
    >>> bool(finite_flag([torch.ones(3), torch.tensor([1.0, float("nan")])]))
    False
    >>> first_nonfinite([("a", torch.ones(2)), ("b", torch.tensor([float("inf")]))])
    'b'
    >>> owner_module("encoder.layers.0.linear1.weight")
    'encoder.layers.0.linear1'
    >>> anomaly_op("Function 'LogBackward0' returned nan values in its 0th output.")
    'LogBackward0'
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from itertools import repeat
from operator import attrgetter, is_not
from typing import Any, Optional

import torch
from torch import Tensor

_ANOMALY_OP = re.compile(r"Function '([A-Za-z0-9_.]+)' returned nan")
_grad_of = attrgetter("grad")
_requires_grad = attrgetter("requires_grad")
#: CPU gradients up to this many are handed over as separate 0-dim norms: reading each (about 0.4 us) costs less
#: than stacking them first (about 3 us, plus 0.2 us a tensor; measured on one core, torch 2.x).
_FEW = 16
#: dtypes whose fused norm needs no widening (float16 norms overflow at 65504: :func:`norm_total` widens them)
PLAIN_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def _floating(tensors: Iterable[Optional[Tensor]]) -> list[Tensor]:
    return [t for t in tensors if t is not None and (t.is_floating_point() or t.is_complex())]


def norm_total(tensors: Sequence[Optional[Tensor]]) -> Optional[Tensor]:
    """Sum of the L2 norms of all tensors, as a 0-dim tensor on the device; None if there are none.

    One fused ``torch._foreach_norm`` over all tensors plus one sum, no host sync. A NaN or Inf anywhere makes the
    total non-finite on every backend (sums cannot drop a NaN, unlike some max reductions). The L2 norm is the
    one with a fast fused kernel on CPU as well as on GPU. Squares of finite values above about 1e19 also overflow
    to Inf: confirm with :func:`first_nonfinite` before reporting. float16 tensors are reduced in float32, where
    a sum of squares only overflows that far out too.
    """
    tensors = _floating(tensors)
    if not tensors:
        return None
    with torch.no_grad():  # no autograd graph, and no per-tensor detach() on the hot path
        half = [t for t in tensors if t.dtype == torch.float16]
        if half:
            rest = [t for t in tensors if t.dtype != torch.float16]
            norms = list(torch._foreach_norm(rest, 2)) if rest else []
            norms += list(torch._foreach_norm(half, 2, dtype=torch.float32))
        else:
            norms = list(torch._foreach_norm(tensors, 2))
        try:
            return torch.stack(norms).sum()
        except RuntimeError:  # tensors on several devices (model parallel): gather the few scalars on one
            device = norms[0].device
            return torch.stack([n.to(device) for n in norms]).sum()


def grad_norm_parts(params: Sequence[Tensor], plain: bool) -> list[Tensor]:
    """The gradients of ``params`` as flag parts (see :func:`flag_parts`): the L2 norm of each, one vector (a few
    0-dim norms on the CPU, see :data:`_FEW`).

    ``plain``: every parameter is known to be of a :data:`PLAIN_DTYPES` dtype (the caller caches that with its
    parameter list); then, when every one has a gradient, it is one fused norm and one stack, with no Python
    frame per parameter. Anything else (no gradient, float16, sparse) takes :func:`flag_parts`.

    >>> w = torch.ones(2, requires_grad=True)
    >>> w.grad = torch.tensor([3.0, 4.0])
    >>> [t.reshape(-1).tolist() for t in grad_norm_parts([w], plain=True)]
    [[5.0]]
    """
    grads = list(map(_grad_of, params))
    if not plain or not all(map(is_not, grads, repeat(None))):
        return flag_parts(grads)
    try:
        # create_graph=True leaves gradients with a graph of their own; any other gradient builds none, and the
        # context manager costs as much as the norms on a small model (the hook runs with grad mode on).
        if torch.is_grad_enabled() and any(map(_requires_grad, grads)):
            with torch.no_grad():
                return [torch.stack(torch._foreach_norm(grads, 2))]
        norms = torch._foreach_norm(grads, 2)
        if len(norms) <= _FEW and grads[0].is_cpu:
            return list(norms)  # read one by one on the host: no stack to pay (see _FEW)
        return [torch.stack(norms)]
    except (RuntimeError, NotImplementedError, TypeError):  # sparse gradients, several devices
        return flag_parts(grads)


def flag_parts(tensors: Sequence[Optional[Tensor]], *scalars: Optional[Tensor],
               norms: Optional[Tensor] = None) -> list[Tensor]:
    """Few device tensors whose values are all finite exactly when every value of ``tensors`` and ``scalars`` is.

    Nothing is reduced further or read: a caller that reads other figures in the same host transfer tests these
    with :func:`math.isfinite` on the host, which saves the reduction and the comparison on the device. ``norms``,
    the L2 norm of each of ``tensors`` computed elsewhere in the step, stands for them and saves reading them again.
    """
    parts = [norms] if norms is not None else [norm_total(tensors)] if tensors else []
    for s in scalars:
        if s is not None and (s.is_floating_point() or s.is_complex()):
            if s.requires_grad:
                s = s.detach()
            if s.is_complex():
                s = torch.view_as_real(s)
            # A plain sum keeps a NaN or Inf (Inf - Inf is NaN); a finite overflow is confirmed tensor by tensor.
            parts.append(s if s.dim() == 0 else s.sum())
    return [p for p in parts if p is not None]


def finite_flag(tensors: Sequence[Optional[Tensor]], *scalars: Optional[Tensor]) -> Optional[Tensor]:
    """0-dim bool tensor, True when every value of ``tensors`` and of the extra ``scalars`` (losses) is finite.

    Stays on the device: one fused reduction, no host sync. None when there is nothing to check.
    """
    parts = flag_parts(tensors, *scalars)
    if not parts:
        return None
    total = parts[0]
    with torch.no_grad():
        for p in parts[1:]:
            total = total + p.to(total.device, torch.float32)
        return torch.isfinite(total)


def is_finite(tensor: Optional[Tensor]) -> bool:
    """Host-side check of one tensor (syncs); True for None and for integer tensors.

    A real tensor is read in one pass: its smallest and largest values are finite exactly when all are (both
    propagate NaN), where ``isfinite(t).all()`` makes a mask as large as the tensor (a 32k-vocabulary output).

    >>> is_finite(torch.tensor([1.0, -2.0])), is_finite(torch.tensor([1.0, float("nan")]))
    (True, False)
    """
    if tensor is None or not (tensor.is_floating_point() or tensor.is_complex()):
        return True
    tensor = tensor.detach()
    if tensor.is_complex() or tensor.numel() == 0:
        return bool(torch.isfinite(tensor).all())
    low, high = torch.aminmax(tensor)  # tested on the host: two floats read at once cost less than three more ops
    return all(map(math.isfinite, torch.stack([low, high]).tolist()))


def first_nonfinite(named: Iterable[tuple[str, Optional[Tensor]]]) -> Optional[str]:
    """Name of the first tensor, in the order given, holding a NaN or Inf; None when all are finite (slow path)."""
    for name, tensor in named:
        if not is_finite(tensor):
            return name
    return None


def nonfinite_names(named: Iterable[tuple[str, Optional[Tensor]]], limit: int = 10) -> list[str]:
    """Names of the tensors holding a NaN or Inf, in the order given, at most ``limit`` of them (slow path)."""
    out = []
    for name, tensor in named:
        if not is_finite(tensor):
            out.append(name)
            if len(out) >= limit:
                break
    return out


def count_nonfinite(tensor: Tensor) -> dict[str, int]:
    """``{"nan": .., "inf": .., "numel": ..}`` of one tensor (slow path)."""
    t = tensor.detach()
    if not (t.is_floating_point() or t.is_complex()):
        return {"nan": 0, "inf": 0, "numel": t.numel()}
    return {"nan": int(torch.isnan(t).sum()), "inf": int(torch.isinf(t).sum()), "numel": t.numel()}


def tensors_in(obj: Any, prefix: str = "") -> list[tuple[str, Tensor]]:
    """Every tensor of a nested structure of tuples, lists (namedtuples included) and dicts, with a path name."""
    out: list[tuple[str, Tensor]] = []
    if isinstance(obj, Tensor):
        out.append((prefix or "tensor", obj))
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            out += tensors_in(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out += tensors_in(v, f"{prefix}[{i}]" if prefix else f"[{i}]")
    return out


def owner_module(parameter_name: str) -> str:
    """``"net.0.weight"`` -> ``"net.0"``: the module (as in ``named_modules()``) that holds a parameter."""
    return parameter_name.rsplit(".", 1)[0] if "." in parameter_name else ""


def anomaly_op(message: str) -> Optional[str]:
    """The autograd node named by ``torch.autograd.detect_anomaly``'s error message, e.g. ``"DivBackward0"``."""
    match = _ANOMALY_OP.search(message)
    return match.group(1) if match else None

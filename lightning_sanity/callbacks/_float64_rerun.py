"""``constant-output`` at the start: are outputs that differ by a hair differing only by round-off?

The fit-start rule calls outputs identical when they differ by at most ``CONSTANT_RTOL`` of their magnitude, the
round-off of the output itself. Round-off made inside the network can be amplified far beyond that: a normalisation
over a single element (``GroupNorm`` with one channel per group on a pooled ``1x1`` map, an ``InstanceNorm`` or
``LayerNorm`` over a size-1 axis) computes ``x - mean(x)``, which is 0 up to rounding, and multiplies it by
``1/sqrt(eps)`` (316 for ``eps=1e-5``). The output is then constant plus noise well above ``CONSTANT_RTOL``.

When the first batch's outputs differ by less than ``SUSPECT_RTOL`` of their magnitude, the same call runs once more
with float64 copies of the parameters, buffers and float inputs (``torch.func.functional_call``: the module itself
is not touched). Differences that the input makes survive a change of precision; round-off shrinks by nine orders
of magnitude. The same comparison per module places where the input stops making a difference.
"""

from __future__ import annotations

import itertools
from typing import Any, Optional

import torch
from torch import nn

from lightning_sanity.batch import map_tensors
from lightning_sanity.checks import flow


#: Largest model (parameters and buffers, in values) given a float64 copy: 400 MB in float64. A bigger one keeps the
#: float32 verdict rather than risk the memory of the user's device.
MAX_VALUES = 50_000_000


class _Call(nn.Module):
    """Wraps one way of calling the model so that ``functional_call`` can swap the model's tensors around it."""

    def __init__(self, model: nn.Module, fn: Any) -> None:
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, args: tuple, kwargs: dict) -> Any:
        return self.fn(args, kwargs)


def float64_rerun(run: Any, differing: list[int]) -> Optional[dict[str, Any]]:
    """The first batch's call again in float32 and in float64, recorded per module; None when it cannot run so.

    Returns ``spread`` and ``scale`` of the float64 output (as :func:`flow.output_spread` on the same samples) and
    ``spot``, where the differences between samples stop surviving the change of precision (or None).
    """
    from lightning_sanity.callbacks._flow_run import _Recorder  # the flow run's module imports this one

    model, size, picked = run.model, run.size, differing[: max(run.samples, 1)]
    device = next(itertools.chain(model.parameters(), model.buffers()), torch.zeros(())).device
    if device.type == "mps":  # no float64 there
        return None
    if sum(t.numel() for t in itertools.chain(model.parameters(), model.buffers())) > MAX_VALUES:
        return None
    idx = torch.tensor(picked)

    def difference(t: torch.Tensor) -> Optional[torch.Tensor]:
        dim = flow.batch_dim(t, size)
        if dim is None or not t.is_floating_point():
            return None
        r = t.detach().movedim(dim, 0).reshape(size, -1).double()
        return (r.index_select(0, idx.to(r.device)) - r[0]).abs().max()

    def double(t: torch.Tensor) -> torch.Tensor:
        return t.detach().double() if t.is_floating_point() else t

    state = {f"model.{name}": double(t) for name, t in itertools.chain(
        model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False))}
    wrapper = _Call(model, run.fn)
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        single = _Recorder(model, difference)
        with single:
            run.fn(run.args, run.kwargs)
        precise = _Recorder(model, difference)
        with precise:
            out = torch.func.functional_call(wrapper, state, (map_tensors(run.args, double),
                                                              map_tensors(run.kwargs, double)))
    tensor = flow.first_output_tensor(out, size)
    views = flow.per_sample_views(tensor, size) if tensor is not None else []
    if not views or views[0][1].dtype != torch.float64:
        return None  # the model casts back to its own dtype somewhere: float64 says nothing
    spread, scale = flow.output_spread(views[0][1], differing)
    spot = None
    if single.events == precise.events:  # the same calls in the same order
        flags = [None if a is None or b is None else flow.survives_precision(float(a), float(b))
                 for a, b in zip(single.values, precise.values)]
        spot = precise.transition(flags)
        if spot is not None:
            spot["where"] = spot["inside"] if spot["inside"] else (spot["before"] or None)
    return {"spread": spread, "scale": scale, "spot": spot}

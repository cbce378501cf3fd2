"""Information flow through a model: optimizer coverage, constant outputs, and samples mixed across the batch.

Pure functions on tensors and parameter lists, unit-tested without a Trainer; the callback
:class:`lightning_sanity.callbacks.model_checks.ModelChecks` runs the model and calls them.

- optimizer coverage: which trainable parameters no optimizer holds, and which optimizer parameters the model
  does not own (:func:`optimizer_coverage`, :func:`uncovered_modules`).
- constant output: does the output differ between samples whose inputs differ (:func:`output_spread`)?
- batch mixing: the gradient of sample ``i``'s output with respect to the inputs must vanish on every other sample
  (:func:`leak_fraction`). This is the "sum the outputs of example i, backprop to the input, check that only the
  i-th input gets a gradient" test of the practice write-ups, done with ``torch.autograd.grad`` so that no
  ``.grad`` of the user's parameters is touched.

Example::

    >>> import torch
    >>> x = torch.randn(4, 3, requires_grad=True)
    >>> out = x * 2                                  # per sample: no mixing
    >>> g, = torch.autograd.grad(out[1].sum(), [x])
    >>> leak_fraction(g, batch_dim=0, index=1)
    0.0
    >>> out = x - x.mean(0)                           # mixes samples
    >>> g, = torch.autograd.grad(out[1].sum(), [x])
    >>> round(leak_fraction(g, batch_dim=0, index=1), 2)
    0.5
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional

import torch

#: Share of the gradient of sample i's output that may land on other samples before we call it mixing.
#: In eval mode a model without cross-sample operations gives exactly zero there (autograd multiplies by exact
#: zeros), so any real leak is far above this; the margin only absorbs float round-off of fused kernels.
LEAK_TOLERANCE = 1e-4

#: Outputs closer than this, relative to their magnitude, count as identical. Float32 round-off is ~1e-7; the
#: bugs this catches (input multiplied by zero, forward ignoring its input) give exactly identical outputs.
CONSTANT_RTOL = 1e-6


# --------------------------------------------------------------------------- optimizer coverage


@dataclasses.dataclass
class Coverage:
    """Who holds which parameter: the result of :func:`optimizer_coverage`."""

    #: names of trainable parameters of the model in no optimizer's param groups.
    uncovered: list[str]
    #: number of tensors held by an optimizer that are not parameters of the model.
    foreign: int
    #: how many values those foreign tensors hold in all.
    foreign_numel: int
    #: shapes of the first few foreign tensors, for the message.
    foreign_shapes: list[list[int]]
    #: number of trainable parameters of the model.
    trainable: int


def optimizer_coverage(
    named_parameters: Iterable[tuple[str, torch.Tensor]], optimizer_parameters: Iterable[torch.Tensor]
) -> Coverage:
    """Compare the model's parameters with those the optimizers hold, by identity.

    Frozen parameters (``requires_grad=False``) may be left out of every optimizer; they are not counted.

    Example::

        >>> from torch import nn
        >>> model, other = nn.Linear(2, 2), nn.Linear(2, 2)
        >>> cov = optimizer_coverage(model.named_parameters(), [model.weight, *other.parameters()])
        >>> cov.uncovered, cov.foreign, cov.foreign_numel
        (['bias'], 2, 6)
    """
    named = list(named_parameters)
    held = {id(p): p for p in optimizer_parameters}
    owned = {id(p) for _, p in named}
    uncovered = [name for name, p in named if p.requires_grad and id(p) not in held]
    foreign = [p for key, p in held.items() if key not in owned]
    return Coverage(
        uncovered=uncovered,
        foreign=len(foreign),
        foreign_numel=int(sum(p.numel() for p in foreign)),
        foreign_shapes=[list(p.shape) for p in foreign[:3]],
        trainable=sum(1 for _, p in named if p.requires_grad),
    )


def uncovered_modules(uncovered: Sequence[str], trainable: Sequence[str]) -> list[str]:
    """The smallest set of module names that cover the ``uncovered`` parameter names.

    A module is named when every trainable parameter under it is uncovered; otherwise the parameter itself is
    named. A parameter of the root module is named by itself.

    Example::

        >>> uncovered_modules(["head.weight", "head.bias", "enc.norm.weight"],
        ...                   ["enc.0.weight", "enc.norm.weight", "enc.norm.bias", "head.weight", "head.bias"])
        ['head', 'enc.norm.weight']
    """
    missing = set(uncovered)
    out: list[str] = []
    for name in uncovered:
        parts = name.split(".")
        best = name
        for depth in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:depth])
            under = [t for t in trainable if t.startswith(prefix + ".")]
            if under and all(t in missing for t in under):
                best = prefix
            else:
                break
        if best not in out and not any(best.startswith(o + ".") for o in out):
            out.append(best)
    return out


# --------------------------------------------------------------------------- output and batch layout


def batch_dim(tensor: torch.Tensor, batch_size: int) -> Optional[int]:
    """The dimension of an intermediate tensor that indexes samples: 0, or 1 for sequence-first layouts, else None.

    When both dimensions have the batch size, dimension 0 is assumed.
    """
    if tensor.dim() >= 1 and tensor.shape[0] == batch_size:
        return 0
    if tensor.dim() >= 2 and tensor.shape[1] == batch_size:
        return 1
    return None


def per_sample_views(tensor: torch.Tensor, batch_size: int) -> list[tuple[str, torch.Tensor]]:
    """Candidate ``(layout, rows)`` readings of a model output as ``(batch_size, -1)`` rows, one row per sample.

    ``(B, ...)`` is read directly and ``(T, B, ...)`` through its second dimension. A flattened ``(B*k, ...)``
    output (``out.view(-1, C)``) is ambiguous: it is offered both sample-major and time-major, and callers
    accept whichever reading is consistent.

    Example::

        >>> import torch
        >>> [(name, tuple(v.shape)) for name, v in per_sample_views(torch.zeros(6, 5), 3)]
        [('sample-major', (3, 10)), ('time-major', (3, 10))]
    """
    b = batch_size
    if tensor.dim() == 0 or b < 1:
        return []
    if tensor.shape[0] == b:
        return [("batch-first", tensor.reshape(b, -1))]
    if tensor.dim() >= 2 and tensor.shape[1] == b:
        return [("sequence-first", tensor.transpose(0, 1).reshape(b, -1))]
    n = tensor.shape[0]
    if n > b and n % b == 0:
        k = n // b
        rest = tensor.shape[1:]
        sample_major = tensor.reshape(b, -1)
        time_major = tensor.reshape(k, b, *rest).transpose(0, 1).reshape(b, -1)
        return [("sample-major", sample_major), ("time-major", time_major)]
    return []


def first_output_tensor(output: Any, batch_size: int) -> Optional[torch.Tensor]:
    """The first floating-point tensor of a model output (tensor, tuple, list, dict, an object's ``.logits``) that
    has a sample dimension."""
    if isinstance(output, torch.Tensor):
        ok = output.is_floating_point() or output.is_complex()
        return output if ok and per_sample_views(output, batch_size) else None
    if isinstance(output, Mapping):
        output = list(output.values())
    elif isinstance(getattr(output, "logits", None), torch.Tensor):  # an output object (HuggingFace style)
        return first_output_tensor(output.logits, batch_size)
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        output = [getattr(output, f.name) for f in dataclasses.fields(output)]
    if isinstance(output, Sequence) and not isinstance(output, (str, bytes)):
        if len(output) == batch_size and batch_size > 1 and all(not isinstance(o, torch.Tensor) for o in output):
            # One entry per sample (e.g. detection boxes per image): their rows are not samples.
            return None
        for item in output:
            found = first_output_tensor(item, batch_size)
            if found is not None:
                return found
    return None


def is_pairwise_output(tensor: torch.Tensor, batch_size: int) -> bool:
    """A ``(B, B)`` output compares samples with each other by design (similarity matrix, in-batch negatives)."""
    return batch_size > 1 and tensor.dim() == 2 and tensor.shape[0] == batch_size and tensor.shape[1] == batch_size


# --------------------------------------------------------------------------- constant output


def differing_samples(rows: torch.Tensor) -> list[int]:
    """Indices of the samples whose row differs from sample 0's (``rows`` is ``(B, -1)``)."""
    if rows.shape[0] < 2:
        return []
    diff = (rows[1:] != rows[:1]).reshape(rows.shape[0] - 1, -1).any(dim=1)
    return [i + 1 for i in torch.nonzero(diff).flatten().tolist()]


def output_spread(rows: torch.Tensor, samples: Sequence[int], reference: int = 0) -> tuple[float, float]:
    """``(spread, scale)``: the largest difference between the output rows of ``samples`` and of ``reference``,
    and the largest output magnitude among them.

    Example::

        >>> import torch
        >>> output_spread(torch.tensor([[1.0, 2.0], [1.0, 2.5], [1.0, 2.0]]), [1, 2])
        (0.5, 2.5)
    """
    if not samples:
        return 0.0, float(rows[reference].abs().max()) if rows.numel() else 0.0
    if rows.shape[1] > SPREAD_UNITS:
        # Outputs that differ at all differ on most units: a strided subset says so at a fraction of the passes
        # (an LM's 32k-wide logits); only outputs that look constant there are compared on every unit.
        subset = output_spread(strided_units(rows, SPREAD_UNITS), samples, reference)
        if not is_constant(*subset):
            return subset
    idx = torch.tensor(list(samples), device=rows.device)
    picked = rows.index_select(0, idx).float()
    ref = rows[reference].float()
    spread = (picked - ref).abs().max()
    scale = torch.maximum(picked.abs().max(), ref.abs().max())
    spread, scale = torch.stack([spread, scale]).tolist()
    return spread, scale


#: Output units per sample that :func:`output_spread` and the batch-mixing probe read first (evenly strided).
SPREAD_UNITS = 4096


def strided_units(rows: torch.Tensor, units: int) -> torch.Tensor:
    """``rows`` cut to at most ``units`` evenly strided entries of its last dimension (a view).

    >>> strided_units(torch.zeros(2, 10), 4).shape, strided_units(torch.zeros(2, 3, 5000), 1024).shape
    (torch.Size([2, 4]), torch.Size([2, 3, 1000]))
    """
    width = int(rows.shape[-1])
    return rows if width <= units else rows[..., :: -(-width // units)]


def is_constant(spread: float, scale: float, rtol: float = CONSTANT_RTOL) -> bool:
    """True when outputs that should differ are the same up to float round-off (NaN outputs are not judged)."""
    if spread != spread or scale != scale:  # NaN: the non-finite check owns that
        return False
    return spread <= rtol * scale


#: Outputs closer than this, relative to their magnitude, are run again in float64 to tell a collapse hidden under
#: amplified round-off from a real dependence (``callbacks/_float64_rerun.py``). An untrained model's inputs move its
#: output by a good share of its magnitude; a real dependence this small survives the rerun and stays silent.
SUSPECT_RTOL = 1e-3
#: A difference between samples that float64 keeps at least this share of is real; round-off shrinks by about
#: 2**-53 / 2**-24 (2e-9) from float32 to float64, a real difference not at all.
PRECISION_SHRINK = 1e-3


def is_suspect(spread: float, scale: float) -> bool:
    """True when outputs that should differ differ by so little that only a float64 rerun can say whether it is
    round-off."""
    return spread == spread and scale == scale and spread <= SUSPECT_RTOL * scale


def survives_precision(single: float, double: float) -> bool:
    """Whether a difference between samples measured in float32 (``single``) and in float64 (``double``) is made by
    the input rather than by round-off.

    >>> survives_precision(0.25, 0.25), survives_precision(1e-5, 3e-14), survives_precision(0.0, 0.0)
    (True, False, False)
    """
    return double > 0 and double >= PRECISION_SHRINK * single


#: constant-output: a gradient that predicts changes of the output's random projection of at least this share of the
#: output scale per square root of the units projected carries the input though the value does not: a surrogate
#: gradient (straight-through), far above the round-off of a truly constant network's gradient.
SURROGATE_RTOL = 1e-3


def gradient_carries_input(change: Optional[float], scale: float) -> bool:
    """Whether the first-order change a constant output's gradient predicts (:meth:`_FlowRun.gradient_change`, per
    square root of the units projected) is a real dependence on the input.

    >>> gradient_carries_input(0.5, 1.0), gradient_carries_input(1e-9, 1.0), gradient_carries_input(None, 1.0)
    (True, False, False)
    """
    return change is not None and scale > 0 and change >= SURROGATE_RTOL * scale


def perturb(x: torch.Tensor, index: int, generator: torch.Generator, relative: float = 0.1) -> torch.Tensor:
    """A copy of float input ``x`` with sample ``index`` moved by noise of ``relative`` times the input's spread.

    Draws only from ``generator``, never from the global RNG.
    """
    sample = x[index].float()
    size = float(sample.std()) if sample.numel() > 1 else 0.0
    size = size if size > 0 else max(float(sample.abs().mean()), 1.0)
    noise = torch.randn(sample.shape, generator=generator, dtype=torch.float32).to(x.device)
    out = x.clone()
    out[index] = (sample + relative * size * noise).to(x.dtype)
    return out


# --------------------------------------------------------------------------- batch mixing


def sample_indices(batch_size: int, count: int) -> list[int]:
    """``count`` sample indices spread over the batch, always including the first and the last.

    Example::

        >>> sample_indices(64, 3), sample_indices(2, 4)
        ([0, 32, 63], [0, 1])
    """
    if batch_size <= count:
        return list(range(batch_size))
    if count == 1:
        return [0]
    step = (batch_size - 1) / (count - 1)
    return sorted({round(k * step) for k in range(count)})


def leak_fraction(grad: torch.Tensor, batch_dim: int, index: int) -> float:
    """Share of ``|grad|`` that falls on samples other than ``index`` along ``batch_dim`` (0 when all is zero)."""
    g = grad.detach().abs().float().movedim(batch_dim, 0).reshape(grad.shape[batch_dim], -1).sum(dim=1)
    total = g.sum()
    others = total - g[index]
    total, others = torch.stack([total, others]).tolist()
    return others / total if total > 0 else 0.0


def is_mixing(leak: float, tolerance: float = LEAK_TOLERANCE) -> bool:
    """Whether a :func:`leak_fraction` is above ``tolerance``: the samples are mixed.

    >>> is_mixing(0.5), is_mixing(1e-6), is_mixing(0.5, tolerance=0.9)
    (True, False, False)
    """
    return leak > tolerance


def leaking_samples(grad: torch.Tensor, batch_dim: int, index: int, limit: int = 5) -> list[int]:
    """The other samples ``grad`` reaches most, strongest first."""
    g = grad.detach().abs().float().movedim(batch_dim, 0).reshape(grad.shape[batch_dim], -1).sum(dim=1)
    g[index] = 0
    order = torch.argsort(g, descending=True)[:limit]
    return [int(j) for j in order.tolist() if float(g[j]) > 0]


# --------------------------------------------------------------------------- where in the model


@dataclasses.dataclass
class Event:
    """A tensor seen entering (``kind="in"``) or leaving (``"out"``) a module during one forward, in call order."""

    time: int
    module: str
    kind: str
    #: whether the tensor already shows the defect (varies / mixes), or None when it could not be judged.
    flag: Optional[bool]


def locate_transition(events: Sequence[Event], spans: Mapping[str, tuple[int, int]]) -> Optional[dict[str, Any]]:
    """Where the flag turns from True to False for the last time along the forward.

    ``events`` are in call order; ``spans`` gives each module's (enter time, exit time). Returns the innermost
    module whose forward contains the step (``"inside"``), the last module whose tensor still had the flag
    (``"after"``) and the first one whose tensor had lost it (``"before"``), or None when there is no such step.

    Example::

        >>> ev = [Event(0, "", "in", True), Event(1, "a", "in", True), Event(2, "a", "out", True),
        ...       Event(3, "b", "in", False), Event(4, "b", "out", False), Event(5, "", "out", False)]
        >>> locate_transition(ev, {"": (0, 5), "a": (1, 2), "b": (3, 4)})
        {'inside': '', 'after': 'a', 'before': 'b'}
    """
    judged = [e for e in events if e.flag is not None]
    last_true = max((k for k, e in enumerate(judged) if e.flag), default=None)
    if last_true is None or last_true + 1 >= len(judged):
        return None
    s, c = judged[last_true], judged[last_true + 1]
    containing = [
        name for name, (start, end) in spans.items() if start <= s.time and end >= c.time
    ]
    inside = max(containing, key=lambda n: spans[n][0]) if containing else None
    return {"inside": inside, "after": s.module, "before": c.module}

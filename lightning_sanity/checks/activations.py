"""Activation health: the fraction of dead ReLU-like units and of saturated tanh/sigmoid outputs.

A *unit* is one feature of an activation's output: dimension 1 for ``[batch, features]`` and for images
``[batch, channels, height, width]`` (and 3-D volumes), the last dimension for sequences
``[batch, time, features]``. A unit is *dead* when it is never positive anywhere in the batch (for ReLU: its
output is 0 for every sample and position, so no gradient flows through it). An output is *saturated* when a
tanh is beyond +-0.99 or a sigmoid beyond 0.01/0.99, where their slope is below 0.02 and 0.01.

Example::

    >>> import torch
    >>> out = torch.relu(torch.tensor([[1.0, -1.0, -2.0, 0.5], [2.0, -3.0, -1.0, -0.5]]))
    >>> dead_unit_fraction(out).item()  # units 1 and 2 are never positive
    0.5
    >>> saturated_fraction(torch.tanh(torch.tensor([10.0, -10.0, 0.1, 9.0])), "tanh").item()
    0.75
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

# Thresholds. CS231n's notes warn that with a too-high learning rate "as much as 40%" of a ReLU network can be
# dead, and published detectors fire from 50-70% dead units; a healthy network can carry a large minority of
# dead units without harm, so the suite fires only when nearly all of a layer is dead or saturated, on two
# measurements in a row.

#: dead-activations: fraction of a layer's units that are dead for a finding.
DEAD_FRACTION = 0.9
#: dead-activations: fraction of a tanh/sigmoid layer's outputs that are saturated for a finding.
SATURATED_FRACTION = 0.9
#: |tanh| beyond this is saturated (slope 1 - 0.99^2 < 0.02).
TANH_LIMIT = 0.99
#: sigmoid within this of 0 or 1 is saturated (slope < 0.01).
SIGMOID_MARGIN = 0.01
#: a unit needs at least this many values (batch x positions) before "never positive" means anything: a
#: healthy unit that is positive half the time is never positive in 16 samples with probability 1.5e-5.
MIN_VALUES_PER_UNIT = 16

_RELU_LIKE: tuple[type, ...] = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish)
_SATURATING: dict[type, str] = {nn.Tanh: "tanh", nn.Sigmoid: "sigmoid", nn.Hardtanh: "tanh", nn.Hardsigmoid: "sigmoid"}


#: Activation classes of model libraries that do not subclass torch's (HuggingFace's ``ACT2CLS``: GELUActivation,
#: NewGELUActivation, QuickGELUActivation, ReLUSquaredActivation...; timm's GELU, Swish, HardMish...), by their
#: lower-case class name without "activation"; a model's own copy (BLOOM's ``BloomGelu``) by the name's ending.
#: Only parameter-free leaf modules: a learned activation is not one.
_NAMED_KINDS: dict[str, str] = {
    **dict.fromkeys(("relu", "relu6", "relusquared", "squaredrelu", "gelu", "newgelu", "fastgelu", "quickgelu",
                     "accurategelu", "clippedgelu", "gelutanh", "gelupytorchtanh", "silu", "swish", "mish",
                     "hardswish", "hardmish"), "relu"),
    "tanh": "tanh", "hardtanh": "tanh", "sigmoid": "sigmoid", "hardsigmoid": "sigmoid",
}


def activation_kind(module: nn.Module) -> Optional[str]:
    """``"relu"`` (ReLU family, GELU, SiLU: judged for dead units), ``"tanh"``, ``"sigmoid"``, or None.

    LeakyReLU, PReLU and the ELU family are not judged: their negative side is meant to carry gradient. Library
    classes that re-implement these (HuggingFace's ``NewGELUActivation``, timm's ``Swish``) are known by name.

    >>> activation_kind(nn.ReLU()), activation_kind(nn.Tanh()), activation_kind(nn.LeakyReLU())
    ('relu', 'tanh', None)
    >>> class NewGELUActivation(nn.Module):
    ...     def forward(self, x):
    ...         return nn.functional.gelu(x, approximate="tanh")
    >>> activation_kind(NewGELUActivation())
    'relu'
    """
    if isinstance(module, _RELU_LIKE):  # before Hardtanh: ReLU6 is a Hardtanh
        return "relu"
    for cls, kind in _SATURATING.items():
        if isinstance(module, cls):
            return kind
    if type(module).__module__.startswith("torch.nn"):
        return None  # torch's own classes are known by type above (nn.LeakyReLU is not judged)
    name = type(module).__name__.lower().replace("activation", "").replace("_", "")
    kind = _NAMED_KINDS.get(name)
    if kind is None and name.endswith(("gelu", "silu", "swish", "mish")):  # a model's own copy: BloomGelu
        kind = "relu"
    if kind is None or module._modules or module._parameters:
        return None
    return kind


def unit_dim(output: torch.Tensor) -> int:
    """The dimension that indexes units (see the module docstring).

    >>> unit_dim(torch.zeros(8, 16)), unit_dim(torch.zeros(8, 5, 16)), unit_dim(torch.zeros(8, 3, 4, 4))
    (1, 2, 1)
    """
    if output.dim() == 3:
        return 2
    return 1 if output.dim() >= 2 else 0


def values_per_unit(output: torch.Tensor) -> int:
    """How many values each unit has in this output (batch times positions)."""
    if output.dim() == 0:
        return 1
    return output.numel() // max(1, output.shape[unit_dim(output)])


def dead_unit_fraction(output: torch.Tensor) -> torch.Tensor:
    """Fraction of units never positive in ``output`` (a 0-d float tensor on the output's device)."""
    x = output.detach()
    if x.dim() == 0:
        return (x <= 0).float()
    d = unit_dim(x)
    dims = [i for i in range(x.dim()) if i != d]
    peak = x.amax(dim=dims) if dims else x
    return (peak <= 0).float().mean()


def saturated_fraction(
    output: torch.Tensor, kind: str, *, tanh_limit: float = TANH_LIMIT, sigmoid_margin: float = SIGMOID_MARGIN
) -> torch.Tensor:
    """Fraction of ``output``'s values at a tanh's or sigmoid's flat ends (a 0-d float tensor): ``|x| > tanh_limit``
    for a tanh, within ``sigmoid_margin`` of 0 or 1 for a sigmoid.

    >>> out = torch.tanh(torch.tensor([3.0, -3.0, 0.1, 0.2]))  # |tanh(3)| = 0.995
    >>> saturated_fraction(out, "tanh").item(), saturated_fraction(out, "tanh", tanh_limit=0.999).item()
    (0.5, 0.0)
    """
    x = output.detach()
    if kind == "tanh":
        hit = x.abs() > tanh_limit
    elif kind == "sigmoid":
        hit = (x < sigmoid_margin) | (x > 1 - sigmoid_margin)
    else:
        raise ValueError(f"`kind` must be 'tanh' or 'sigmoid', got {kind!r}.")
    return hit.float().mean()


def sustained(fractions: Sequence[float], threshold: float, times: int = 2) -> bool:
    """True when the last ``times`` measurements are all at or above ``threshold``.

    >>> sustained([0.2, 0.95, 0.97], 0.9), sustained([0.95, 0.2, 0.97], 0.9)
    (True, False)
    """
    recent = list(fractions)[-times:]
    return len(recent) == times and all(f >= threshold for f in recent)

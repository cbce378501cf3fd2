"""What a *layer* is, how layers are grouped for logging, and the fused per-layer norm arithmetic.

A *layer* is a module that owns parameters directly (``module.named_parameters(recurse=False)`` is not empty):
``nn.Linear`` owns its weight and bias, a ``Sequential`` owns nothing. Norms are L2 norms over all the layer's
parameters together, computed from per-tensor norms with one fused ``torch._foreach_norm`` and one
``index_add_`` of their squares; the *sum of squares* per layer is the quantity kept, because sums of squares add
across micro-batches of parameters, across optimizers and across ranks (a sharded strategy would all-reduce
them), and the norm is its square root. The judgements over these figures are in
:mod:`lightning_sanity.checks.norms`.

Example::

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> layers = layer_map(net)
    >>> layers.names, layers.kinds
    (('0', '2'), ('matrix', 'matrix'))
    >>> params = list(net.parameters())
    >>> index = torch.tensor([layers.param_layer[id(p)] for p in params])
    >>> sq = layer_sum_of_squares([torch.ones_like(p) for p in params], index, len(layers.names))
    >>> sq.tolist()  # 4*3 + 3 ones in layer '0', 3*2 + 2 in layer '2'
    [15.0, 8.0]
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

ROOT = "(root)"

_NORM_TYPES: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    _NORM_TYPES = (*_NORM_TYPES, nn.RMSNorm)
_EMBEDDING_TYPES = (nn.Embedding, nn.EmbeddingBag)
#: Layers whose weight is a matrix or kernel whatever its shape (a ``Linear(64, 1)`` head's weight is ``(1, 64)``).
_WEIGHT_TYPES = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.RNNBase, nn.MultiheadAttention)


# --------------------------------------------------------------------------- layers and groups


@dataclasses.dataclass(frozen=True)
class LayerMap:
    """The layers of a model and how they are grouped for logging.

    ``kinds``: ``"matrix"`` (owns a parameter of 2 or more dimensions: Linear, Conv, RNN, attention),
    ``"norm"`` (BatchNorm, LayerNorm, GroupNorm, RMSNorm), ``"embedding"``, or ``"vector"`` (anything else).
    ``param_layer`` maps ``id(parameter)`` to its layer index; ``group_of`` maps a layer index to its group.
    """

    names: tuple[str, ...]
    kinds: tuple[str, ...]
    numels: tuple[int, ...]
    param_layer: dict[int, int]
    groups: tuple[str, ...]
    group_of: tuple[int, ...]
    depth: Optional[int] = None

    def __len__(self) -> int:
        return len(self.names)


def layer_kind(module: nn.Module) -> str:
    """``"norm"``, ``"embedding"``, ``"matrix"`` or ``"vector"`` (see :class:`LayerMap`)."""
    if isinstance(module, _NORM_TYPES):
        return "norm"
    if isinstance(module, _EMBEDDING_TYPES):
        return "embedding"
    params = list(module.parameters(recurse=False))
    if isinstance(module, _WEIGHT_TYPES) and any(p.dim() >= 2 for p in params):
        return "matrix"
    # A custom module's ``(C, 1, 1)`` layer scale or ``(1, 1, D)`` class token is a vector shaped to broadcast: its
    # update ratio and gradient scale are a vector's (ConvNeXt's layer scale starts at 1e-6), not a weight matrix's.
    if any(sum(size > 1 for size in p.shape) >= 2 for p in params):
        return "matrix"
    return "vector"


def group_name(name: str, depth: Optional[int] = None, pattern: Optional[re.Pattern] = None) -> str:
    """The logging group of layer ``name``: its regex match, or its first ``depth`` dotted parts, or itself.

    >>> group_name("encoder.layers.3.linear1", depth=3)
    'encoder.layers.3'
    >>> group_name("encoder.layers.3.linear1", pattern=re.compile(r"encoder\\.layers\\.\\d+"))
    'encoder.layers.3'
    >>> group_name("head", pattern=re.compile(r"encoder\\.layers\\.\\d+"))
    'head'
    """
    if pattern is not None:
        match = pattern.search(name)
        if match:
            return match.group(1) if match.groups() and match.group(1) else match.group(0)
        return name
    if depth is not None and name != ROOT:
        return ".".join(name.split(".")[:depth])
    return name


def auto_depth(names: Sequence[str], max_groups: int) -> Optional[int]:
    """The largest module depth at which ``names`` fall into at most ``max_groups`` groups; None if all fit.

    >>> auto_depth(["a.0.x", "a.0.y", "a.1.x", "b"], max_groups=4) is None
    True
    >>> auto_depth(["a.0.x", "a.0.y", "a.1.x", "b"], max_groups=3)
    2
    """
    if len(names) <= max_groups:
        return None
    deepest = max(n.count(".") + 1 for n in names)
    for depth in range(deepest, 0, -1):
        if len({group_name(n, depth) for n in names}) <= max_groups:
            return depth
    return 1


def layer_map(
    module: nn.Module,
    depth: Optional[int] = None,
    pattern: Optional[str] = None,
    max_groups: int = 64,
) -> LayerMap:
    """Find the layers of ``module`` and group them for logging.

    Layers are grouped by ``pattern`` (a regex; its first group, or the whole match, names the group) or
    ``depth`` when given; otherwise each layer is its own group unless there are more than ``max_groups``
    layers, in which case they are grouped at the largest module depth that fits.
    """
    names: list[str] = []
    kinds: list[str] = []
    numels: list[int] = []
    param_layer: dict[int, int] = {}
    for name, sub in module.named_modules():
        own = [p for p in sub.parameters(recurse=False) if id(p) not in param_layer]
        if not own:
            continue
        index = len(names)
        for p in own:
            param_layer[id(p)] = index
        names.append(name or ROOT)
        kinds.append(layer_kind(sub))
        numels.append(sum(p.numel() for p in own))
    compiled = re.compile(pattern) if pattern is not None else None
    if compiled is None and depth is None:
        depth = auto_depth(names, max_groups)
    group_names = [group_name(n, depth, compiled) for n in names]
    groups = tuple(dict.fromkeys(group_names))
    lookup = {g: i for i, g in enumerate(groups)}
    return LayerMap(
        names=tuple(names),
        kinds=tuple(kinds),
        numels=tuple(numels),
        param_layer=param_layer,
        groups=groups,
        group_of=tuple(lookup[g] for g in group_names),
        depth=depth,
    )


# --------------------------------------------------------------------------- fused norms


def tensor_norms(tensors: Sequence[torch.Tensor], widen: bool = True, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """L2 norm of each tensor as one float32 vector, with one fused kernel per device and dtype.

    ``widen=False`` when every tensor is float32 already: the reduction then skips its dtype conversion path.
    ``out``: a float32 vector to write the norms into (a row of a buffer) instead of a new tensor.
    """
    try:
        if widen:
            norms = torch._foreach_norm(list(tensors), 2, dtype=torch.float32)
        else:
            norms = torch._foreach_norm(list(tensors), 2)
    except (RuntimeError, NotImplementedError, TypeError):
        # Sparse gradients (nn.Embedding(sparse=True)) and exotic tensor types: slow path, per tensor.
        norms = [_one_norm(t) for t in tensors]
    try:
        return torch.stack(norms, out=out)
    except RuntimeError:  # tensors on several devices (model parallel): gather the few scalars on one
        device = norms[0].device if out is None else out.device
        return torch.stack([n.to(device) for n in norms], out=out)


def _one_norm(t: torch.Tensor) -> torch.Tensor:
    if t.is_sparse:
        t = t.coalesce().values()
    return torch.linalg.vector_norm(t.detach().float())


def layer_sum_of_squares(
    tensors: Sequence[torch.Tensor],
    index: torch.Tensor,
    num_layers: int,
    out: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Sum of squared L2 norms of ``tensors`` per layer: ``out[index[i]] += ||tensors[i]||^2``.

    ``out`` (float32, on the tensors' device) is added to in place when given: that is how several optimizers
    of one step, or several ranks of a sharded model, contribute to the same per-layer figure.
    """
    sq = tensor_norms(tensors).square()
    if out is None:
        out = torch.zeros(num_layers, dtype=torch.float32, device=sq.device)
    return out.index_add_(0, index, sq)


def group_sum(values: torch.Tensor, group_of: Sequence[int], num_groups: int) -> torch.Tensor:
    """Add per-layer sums of squares (last dim) into per-group ones.

    >>> group_sum(torch.tensor([1.0, 2.0, 3.0]), [0, 1, 0], 2).tolist()
    [4.0, 2.0]
    """
    index = torch.as_tensor(list(group_of), dtype=torch.long, device=values.device)
    out = torch.zeros(*values.shape[:-1], num_groups, dtype=values.dtype, device=values.device)
    return out.index_add_(-1, index, values)

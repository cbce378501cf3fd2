"""Per-layer gradient and weight norms, update ratios, and the judgements made over their histories.

A *layer* is a module that owns parameters directly (``module.named_parameters(recurse=False)`` is not empty):
``nn.Linear`` owns its weight and bias, a ``Sequential`` owns nothing. Norms are L2 norms over all the layer's
parameters together, computed from per-tensor norms with one fused ``torch._foreach_norm`` and one
``index_add_`` of their squares; the *sum of squares* per layer is the quantity kept, because sums of squares add
across micro-batches of parameters, across optimizers and across ranks (a sharded strategy would all-reduce
them), and the norm is its square root.

Every judgement here is a pure function over per-step histories (rows = optimizer steps, columns = layers),
unit-tested on tensors; the callback decides when to call them.

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
import math
import re
from collections.abc import Sequence
from typing import Optional

import torch
from torch import nn

ROOT = "(root)"

# --------------------------------------------------------------------------- thresholds and their sources
#
# Rules of thumb in the practice write-ups and in CS231n's "Neural Networks Part 3" notes (babysitting the
# learning process): a healthy update-to-weight ratio is around 1e-3 per step; gradients many orders of
# magnitude below the weights (or below later layers) mean vanishing gradients; gradient norms jumping by
# orders of magnitude, or weight norms that keep growing, announce divergence. Published detectors fire at
# mean |grad| below about 1e-7. These rules are rough, and the suite must stay silent on healthy runs of every
# kind, so each threshold below sits far outside what healthy runs of MLPs, CNNs with BatchNorm, LSTMs and
# Transformers (Adam and SGD, schedules, clipping, accumulation) showed in this project's tests.

#: Steps a layer must be observed before any judgement about it.
MIN_STEPS = 5
#: vanishing-gradient: a layer's RMS gradient element below this is vanishingly small. 1e-7 is the mean |grad|
#: threshold published detectors use; RMS >= mean |g|, so RMS < 1e-7 is the stricter (quieter) form.
VANISHING_RMS = 1e-7
#: vanishing-gradient: ... AND its ||g||/||w|| at least this far (4 orders of magnitude) below the largest
#: ||g||/||w|| of the model's layers, so that a run whose gradients all shrink together (a converged model,
#: tiny targets) is not called vanishing.
VANISHING_RELATIVE = 1e-4
#: the conditions must hold on at least this fraction of the observed steps ("sustained").
SUSTAINED_FRACTION = 0.8
#: exploding-gradient: a spike is a global gradient norm at least 1000x (3 orders of magnitude) the running
#: median of the steps before it ...
SPIKE_FACTOR = 1e3
#: ... and at least 10x anything seen before, so that a converged model's rare hard batch (tiny median, early
#: norms far larger) is not a spike.
SPIKE_OVER_MAX = 10.0
#: exploding-gradient: the running-median test needs this many earlier finite steps; a spike before that is
#: judged at the end against the median of the whole run.
SPIKE_WARMUP = 5
#: exploding-gradient: "10x above the level before" is measured against the largest of the first this many
#: steps (the early, large gradients of a fresh model), not against every earlier step: an explosion that ramps
#: up over several steps never sits 10x above its own previous step.
SPIKE_EARLY = 20
#: exploding-gradient, sustained growth: the recent median is 100x the lowest earlier window median and 10x
#: the first window's, and still rising.
GROWTH_FACTOR = 1e2
#: weight-growth: the weight norm multiplied by more than this since the first step ...
WEIGHT_GROWTH_FACTOR = 10.0
#: ... and still rising: up at least 10% over the last quarter of the history.
WEIGHT_STILL_RISING = 1.1
#: weight-growth: layers starting with an RMS weight element below this (zero-initialised layers, LoRA's B)
#: have no meaningful starting norm to grow from.
WEIGHT_MIN_START_RMS = 1e-6
#: update-ratio: ||dw||/||w|| at or above this, sustained, means the learning rate is far too high. CS231n's
#: healthy value is about 1e-3; Adam at lr=1e-2 on small default-initialised layers shows up to about 0.15 on
#: its first steps, so the threshold sits an order of magnitude above that: an update as large as the weights.
UPDATE_TOO_LARGE = 1.0
#: update-ratio: at or below this, sustained, with non-zero gradients, the weights practically do not move.
#: Four orders of magnitude below CS231n's 1e-3.
UPDATE_TOO_SMALL = 1e-7
#: update-ratio: a too-large update must be seen on at least this many measurements (not a single blip).
UPDATE_LARGE_REPEATS = 2
#: update-ratio: "too small" needs this many measurements of a layer.
UPDATE_MIN_MEASUREMENTS = 3

_NORM_TYPES: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    _NORM_TYPES = (*_NORM_TYPES, nn.RMSNorm)
_EMBEDDING_TYPES = (nn.Embedding, nn.EmbeddingBag)


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
    if any(p.dim() >= 2 for p in module.parameters(recurse=False)):
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


# --------------------------------------------------------------------------- dead-gradient


@dataclasses.dataclass
class GradientCounts:
    """Per-layer counts of optimizer steps, for dead-gradient.

    ``observed``: steps in which the layer had a trainable parameter in a stepping optimizer;
    ``missing``: of those, steps in which none of its trainable parameters had a gradient (``.grad is None``);
    ``zero``: steps in which it had gradients and all were exactly zero;
    ``zero_tail``: how many of the latest observed steps in a row were zero or missing;
    ``first_step``: the global step of the first observation.
    """

    observed: torch.Tensor
    missing: torch.Tensor
    zero: torch.Tensor
    zero_tail: torch.Tensor
    #: ``[layers, 3]``: (global step, epoch, batch index) of the first step of the current dead tail, -1 if none.
    dead_since: Optional[torch.Tensor] = None

    @classmethod
    def empty(cls, num_layers: int) -> "GradientCounts":
        z = torch.zeros(num_layers, dtype=torch.long)
        return cls(z.clone(), z.clone(), z.clone(), z.clone(), torch.full((num_layers, 3), -1, dtype=torch.long))

    def update(self, trainable: torch.Tensor, present: torch.Tensor, grad_sq: torch.Tensor,
               where: Optional[torch.Tensor] = None) -> None:
        """Add steps (rows): ``trainable``/``present`` bool and ``grad_sq`` float, each ``[steps, layers]``;
        ``where``: ``[steps, 3]`` (global step, epoch, batch index) of each row, to locate where a layer died.

        >>> c = GradientCounts.empty(2)
        >>> c.update(torch.tensor([[True, True]]), torch.tensor([[True, False]]), torch.tensor([[0.0, 0.0]]))
        >>> c.observed.tolist(), c.missing.tolist(), c.zero.tolist(), c.zero_tail.tolist()
        ([1, 1], [0, 1], [1, 0], [1, 1])
        """
        if trainable.shape[0] == 0:
            return
        missing = trainable & ~present
        zero = trainable & present & (grad_sq == 0)
        # A non-finite gradient is not a dead one; only a finite, non-zero norm resets the tail.
        alive = trainable & present & (grad_sq != 0)
        self.observed += trainable.long().sum(0)
        self.missing += missing.long().sum(0)
        self.zero += zero.long().sum(0)
        dead = (missing | zero).long()
        row = torch.arange(trainable.shape[0]).unsqueeze(1)
        last_alive = torch.where(alive, row, torch.full_like(row, -1)).amax(dim=0)
        since_alive = (dead * (row > last_alive)).sum(0)
        if where is not None and self.dead_since is not None:
            # The first dead row after the last live one starts the current dead tail, unless the tail goes on
            # from an earlier chunk.
            after = dead.bool() & (row > last_alive)
            first = after.long().argmax(dim=0)
            started_here = after.any(dim=0) & ((last_alive >= 0) | (self.zero_tail == 0))
            since = torch.where(started_here.unsqueeze(1), where.long()[first], self.dead_since)
            self.dead_since = torch.where((since_alive == 0).unsqueeze(1) & (last_alive >= 0).unsqueeze(1),
                                          torch.full_like(since, -1), since)
        self.zero_tail = torch.where(last_alive >= 0, since_alive, self.zero_tail + since_alive)


def dead_layers(counts: GradientCounts, min_steps: int = MIN_STEPS) -> dict[str, list[int]]:
    """Layers whose gradient was dead, by kind.

    - ``"missing"``: no gradient (``None``) on every observed step: the layer is cut off from the loss
      (a ``.detach()``, an integer op such as argmax) or never used in training;
    - ``"zero"``: gradients exactly zero on every observed step (zero-weighted loss, ``torch.round`` in the path,
      all-zero initialisation, every ReLU after it dead), or missing on some steps and zero on the rest;
    - ``"died"``: alive at first, then zero or missing on every step of at least the last half of the run.

    >>> c = GradientCounts.empty(3)
    >>> t = torch.ones(6, 3, dtype=torch.bool)
    >>> p = torch.tensor([[True, False, True]] * 6)
    >>> g = torch.tensor([[1.0, 0.0, 0.0]] * 6)
    >>> c.update(t, p, g)
    >>> dead_layers(c)
    {'missing': [1], 'zero': [2], 'died': []}
    """
    enough = counts.observed >= min_steps
    all_dead = enough & (counts.missing + counts.zero == counts.observed)
    missing = all_dead & (counts.missing == counts.observed)
    zero = all_dead & ~missing
    died = enough & ~all_dead & (counts.zero_tail >= torch.clamp(counts.observed // 2, min=min_steps))
    return {
        "missing": missing.nonzero().flatten().tolist(),
        "zero": zero.nonzero().flatten().tolist(),
        "died": died.nonzero().flatten().tolist(),
    }


# --------------------------------------------------------------------------- vanishing-gradient


def relative_gradients(grad_sq: torch.Tensor, weight_sq: torch.Tensor) -> torch.Tensor:
    """``||g|| / ||w||`` per step and layer; NaN where the weight norm is zero or a figure is not finite."""
    ratio = grad_sq.sqrt() / weight_sq.sqrt()
    return torch.where(torch.isfinite(ratio) & (weight_sq > 0), ratio, torch.full_like(ratio, math.nan))


def vanishing_layers(
    grad_sq: torch.Tensor,
    weight_sq: torch.Tensor,
    numels: Sequence[int],
    eligible: torch.Tensor,
    present: Optional[torch.Tensor] = None,
    min_steps: int = MIN_STEPS,
    *,
    rms_limit: float = VANISHING_RMS,
    relative_limit: float = VANISHING_RELATIVE,
) -> list[tuple[int, float, float]]:
    """Layers whose gradients vanish: ``(layer, median relative gap, median RMS gradient)`` for each.

    On at least :data:`SUSTAINED_FRACTION` of the steps, the layer's RMS gradient element is below
    :data:`VANISHING_RMS` AND its ``||g||/||w||`` is below :data:`VANISHING_RELATIVE` times the largest
    ``||g||/||w||`` among the eligible layers of that step. Layers with exactly zero gradients are
    dead-gradient's, not vanishing.

    Args:
        grad_sq, weight_sq: ``[steps, layers]`` sums of squares.
        numels: number of elements per layer.
        eligible: bool ``[layers]``: layers judged, and used as reference (weight-matrix layers).
        present: bool ``[steps, layers]``: the layer had gradients in that step (default: all).
    """
    if grad_sq.shape[0] < min_steps:
        return []
    rel = relative_gradients(grad_sq, weight_sq)
    mask = eligible.unsqueeze(0) & torch.isfinite(rel) & (grad_sq > 0)
    if present is not None:
        mask &= present
    reference = torch.where(mask, rel, torch.full_like(rel, -math.inf)).amax(dim=1, keepdim=True)
    rms = grad_sq.sqrt() / torch.tensor(list(numels), dtype=grad_sq.dtype).clamp(min=1).sqrt()
    vanishing = mask & (rms < rms_limit) & (rel < relative_limit * reference)
    steps = mask.sum(0)
    hits = vanishing.sum(0)
    out = []
    for layer in ((steps >= min_steps) & (hits >= SUSTAINED_FRACTION * steps)).nonzero().flatten().tolist():
        rows = vanishing[:, layer]
        gap = (rel[rows, layer] / reference[rows, 0]).median().item()
        out.append((layer, gap, rms[rows, layer].median().item()))
    return out


# --------------------------------------------------------------------------- exploding-gradient


def gradient_spike(history: torch.Tensor, value: float, window: int = 200, *,
                   factor: float = SPIKE_FACTOR, reference: Optional[float] = None) -> Optional[float]:
    """How many times ``value`` exceeds the running median of ``history`` when that is a spike, else None.

    A spike is at least :data:`SPIKE_FACTOR` times the median of the last ``window`` finite values AND
    :data:`SPIKE_OVER_MAX` times ``reference`` (default: every earlier value), after at least
    :data:`SPIKE_WARMUP` finite values.

    >>> h = torch.tensor([1.0, 1.2, 0.9, 1.1, 1.0, 0.8])
    >>> gradient_spike(h, 5e3)
    5000.0
    >>> gradient_spike(h, 50.0) is None
    True
    """
    finite = history[torch.isfinite(history)]
    if finite.numel() < SPIKE_WARMUP or not math.isfinite(value):
        return None
    median = finite[-window:].median().item()
    if median <= 0:
        return None
    level = finite.max().item() if reference is None else reference
    if value >= factor * median and value >= SPIKE_OVER_MAX * level:
        return value / median
    return None


def sustained_growth(norms: torch.Tensor, windows: int = 8, min_window: int = 4, *,
                     factor: float = GROWTH_FACTOR) -> Optional[float]:
    """The factor by which the norm grew, when it grew by orders of magnitude and is still rising; else None.

    The history is cut into ``windows`` windows (each at least ``min_window`` steps); growth means the last
    window's median is at least :data:`GROWTH_FACTOR` times the lowest earlier window median, at least
    :data:`SPIKE_OVER_MAX` times the first window's, and above the window before it.

    >>> sustained_growth(torch.logspace(0, 4, 40)) > 100
    True
    >>> sustained_growth(torch.ones(40)) is None
    True
    """
    finite = norms[torch.isfinite(norms)]
    size = max(min_window, finite.numel() // windows)
    count = finite.numel() // size
    if count < 3:
        return None
    medians = finite[finite.numel() - count * size:].reshape(count, size).median(dim=1).values
    last, lowest, first = medians[-1].item(), medians[:-1].min().item(), medians[0].item()
    if lowest <= 0 or first <= 0:
        return None
    if last >= factor * lowest and last >= SPIKE_OVER_MAX * first and last > medians[-2].item():
        return last / lowest
    return None


# --------------------------------------------------------------------------- weight-growth


def growing_layers(weight_sq: torch.Tensor, numels: Sequence[int], min_steps: int = MIN_STEPS * 2, *,
                   factor: float = WEIGHT_GROWTH_FACTOR) -> list[tuple[int, float]]:
    """Layers whose weight norm grows without bound: ``(layer, growth factor since the first step)`` for each.

    Growth means the latest weight norm is more than :data:`WEIGHT_GROWTH_FACTOR` times the first one and
    still rising: at least :data:`WEIGHT_STILL_RISING` times the norm three quarters into the history.

    >>> w = torch.cat([torch.ones(10, 1), torch.logspace(0, 4, 10).unsqueeze(1)], dim=1) ** 2
    >>> [(layer, round(f)) for layer, f in growing_layers(w, [1, 1])]
    [(1, 10000)]
    """
    rows = weight_sq.shape[0]
    if rows < min_steps:
        return []
    norms = weight_sq.sqrt()
    first, last, quarter = norms[0], norms[-1], norms[(3 * rows) // 4 - 1]
    start_rms = first / torch.tensor(list(numels), dtype=norms.dtype).clamp(min=1).sqrt()
    ok = torch.isfinite(last) & torch.isfinite(quarter) & (start_rms >= WEIGHT_MIN_START_RMS)
    grew = ok & (last > factor * first) & (last >= WEIGHT_STILL_RISING * quarter)
    return [(layer, (last[layer] / first[layer]).item()) for layer in grew.nonzero().flatten().tolist()]


# --------------------------------------------------------------------------- update-ratio


def update_ratio_verdicts(
    update_sq: torch.Tensor,
    weight_sq: torch.Tensor,
    valid: torch.Tensor,
    min_measurements: int = UPDATE_MIN_MEASUREMENTS,
    *,
    too_large: float = UPDATE_TOO_LARGE,
    too_small: float = UPDATE_TOO_SMALL,
) -> dict[str, list[tuple[int, float]]]:
    """Layers whose update-to-weight ratio ``||dw||/||w||`` is far outside the healthy range, by kind.

    ``"too_large"``: at or above :data:`UPDATE_TOO_LARGE` on at least :data:`UPDATE_LARGE_REPEATS`
    measurements (a learning rate far too high often blows the weights up within a few steps, after which the
    ratio falls again, so a majority rule would miss it); each entry is ``(layer, largest ratio)``.
    ``"too_small"``: at or below :data:`UPDATE_TOO_SMALL` on at least :data:`SUSTAINED_FRACTION` of at least
    ``min_measurements`` measurements; each entry is ``(layer, median ratio)``.

    Args:
        update_sq, weight_sq: ``[measurements, layers]`` sums of squares of the update and of the weights
            before it.
        valid: bool ``[measurements, layers]``: the layer is judged in that measurement (it had non-zero
            gradients, a non-zero learning rate and is a weight-matrix layer).

    >>> u = torch.tensor([[4.0, 1e-16], [9.0, 1e-16], [4.0, 1e-16]])
    >>> w = torch.ones(3, 2)
    >>> update_ratio_verdicts(u, w, torch.ones(3, 2, dtype=torch.bool))
    {'too_large': [(0, 3.0)], 'too_small': [(1, 1e-08)]}
    """
    ratio = update_sq.sqrt() / weight_sq.sqrt()
    ok = valid & torch.isfinite(ratio) & (weight_sq > 0)
    counts = ok.sum(0)
    large = ((ok & (ratio >= too_large)).sum(0) >= UPDATE_LARGE_REPEATS).nonzero().flatten().tolist()
    small = (counts >= min_measurements) & ((ok & (ratio <= too_small)).sum(0) >= SUSTAINED_FRACTION * counts)
    return {
        "too_large": [(layer, _round(ratio[ok[:, layer], layer].max().item())) for layer in large],
        "too_small": [(layer, _round(ratio[ok[:, layer], layer].median().item())) for layer in small.nonzero().flatten().tolist()],
    }


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def median_finite(values: torch.Tensor) -> float:
    """Median of the finite entries, or NaN when there are none."""
    finite = values[torch.isfinite(values)]
    return finite.median().item() if finite.numel() else math.nan


def short_list(names: Sequence[str], limit: int = 6) -> str:
    """``"a, b, c"``, or ``"a, b, ... (+4 more)"`` past ``limit`` names.

    >>> short_list(["a", "b", "c"], limit=2)
    'a, b, ... (+1 more)'
    """
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... (+{len(names) - limit} more)"


def common_module(names: Sequence[str]) -> Optional[str]:
    """The deepest module containing every one of ``names`` (dotted), or None when that is the root.

    >>> common_module(["encoder.0", "encoder.2"])
    'encoder'
    >>> common_module(["encoder.0"])
    'encoder.0'
    >>> common_module(["encoder.0", "head"]) is None
    True
    """
    parts = [n.split(".") for n in names]
    if not parts:
        return None
    prefix = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        prefix.append(level[0])
    return ".".join(prefix) or None

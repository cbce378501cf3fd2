"""dead-gradient per parameter: a trainable tensor whose gradient is exactly zero on every measured step while
another tensor of its layer (or of the model) learns.

The layer rule (:func:`lightning_sanity.checks.norms.dead_layers`) sums a layer's tensors: a layer whose bias
learns hides a weight that never does. A gradient tensor that is exactly zero, *all of it*, on *every* step
means nothing on the way to the loss depends on that tensor: it is multiplied by an input that is always zero
where it is used (an inverted missing-value mask zeroing every feature, all-dead ReLUs before a Linear), or sits
behind a gate that is always shut. Legitimate sparsity never zeroes a whole tensor on every step: an embedding
matrix has rows in every batch (a padding row or rare tokens are rows, not the tensor); a mixture-of-experts
expert or a rarely taken branch gets gradient on some step (one non-zero step clears it) or none at all
(``grad is None``: not counted as a measured step); a frozen tensor has no gradient.

Example::

    >>> dead_parameters(present_steps=[10, 10, 3, 10], alive=[True, False, False, True])
    [1]
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import Optional

import torch
from torch import nn

from lightning_sanity.checks.naming import short_list
from lightning_sanity.checks.norms import MIN_STEPS


def dead_parameters(present_steps: Sequence[int], alive: Sequence[bool], min_steps: int = MIN_STEPS) -> list[int]:
    """Positions of the parameters with a gradient on at least ``min_steps`` measured steps, exactly zero on all."""
    return [i for i, (steps, live) in enumerate(zip(present_steps, alive)) if steps >= min_steps and not live]


def repeated_elsewhere(dead: Sequence[str], alive: Sequence[str]) -> bool:
    """Whether every one of the ``dead`` parameters has a namesake in another block of a stack (the same name with
    other layer numbers) among the ``alive`` ones: the last block of HuggingFace's Funnel, whose relative-position
    terms act on the positions a sequence classifier never reads. An input zeroed by a bug zeroes them in every block.

    >>> repeated_elsewhere(["enc.blocks.1.0.r_kernel"], ["enc.blocks.0.0.r_kernel", "enc.blocks.1.0.q.weight"])
    True
    >>> repeated_elsewhere(["tokenizer.weight"], ["tokenizer.bias"])
    False
    """
    stacks = {_stacked(n) for n in alive if _stacked(n) != n}
    return bool(dead) and all(_stacked(n) != n and _stacked(n) in stacks for n in dead)


def member_signatures(model: nn.Module) -> dict[str, tuple[str, object]]:
    """Each member of a ``ModuleList`` or ``ModuleDict`` in ``model`` (by qualified name): its container's name and
    its structure (type, parameter names and shapes), for :func:`unrouted_members`. Reads shapes only.

    >>> sorted(member_signatures(nn.Sequential(nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2)]))))
    ['0.0', '0.1']
    """
    found: dict[str, tuple[str, object]] = {}
    for name, module in model.named_modules():
        if not isinstance(module, (nn.ModuleList, nn.ModuleDict)):
            continue
        for key, child in module.named_children():
            shapes = tuple((n, tuple(p.shape)) for n, p in child.named_parameters())
            if shapes:
                found[f"{name}.{key}" if name else key] = (name, (type(child).__name__, shapes))
    return found


def unrouted_members(died: Sequence[int], dead: Collection[int], names: Sequence[str],
                     members: Mapping[str, tuple[str, object]]) -> list[int]:
    """Of the layers ``died`` (indices into ``names``: they learned, then stopped), those whose whole member of a
    ``ModuleList``/``ModuleDict`` stopped (every layer in ``dead``) while a structurally identical sibling keeps
    every layer learning: data-dependent routing stopped choosing that member (a mixture-of-experts router that
    collapsed onto some experts). ``members``: member name -> (container name, structural signature).

    A cut or dying path does not look like this: a ``.detach()`` or a zero-weighted loss cuts every sibling, a
    dead ReLU inside a member leaves its output layer's bias learning, and ``nn.Sequential`` (which chains its
    members, so a dead member kills those before it) is not a member container here.

    >>> names = ["experts.0.0", "experts.0.2", "experts.1.0", "experts.1.2", "router"]
    >>> m = {"experts.0": ("experts", "E"), "experts.1": ("experts", "E")}
    >>> unrouted_members([2, 3], {2, 3}, names, m), unrouted_members([1], {1}, names, m)
    ([2, 3], [])
    """
    def member_of(name: str) -> Optional[str]:
        owners = [m for m in members if name == m or name.startswith(m + ".")]
        return max(owners, key=len) if owners else None

    layers_of: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        member = member_of(name)
        if member is not None:
            layers_of.setdefault(member, []).append(i)
    whole = {m for m, idx in layers_of.items() if all(i in dead for i in idx)}
    learning = {members[m] for m, idx in layers_of.items() if not any(i in dead for i in idx)}
    return [i for i in died if (m := member_of(names[i])) in whole and members[m] in learning]


def last_block_side_output(dead: str, alive: Sequence[str]) -> bool:
    """Whether the layer ``dead`` sits in the last block of a stack whose every other block's namesake learns, and
    another layer of its own block learns too: the output a block hands to the next one, dropped after the last
    block (N-BEATS's last backcast). A bug that drops the output drops it in every block, or the whole block.

    >>> alive = ["blocks.0.fc", "blocks.0.backcast", "blocks.1.fc", "blocks.1.backcast", "blocks.2.fc"]
    >>> last_block_side_output("blocks.2.backcast", alive)
    True
    >>> last_block_side_output("blocks.1.conv", ["blocks.0.conv", "blocks.1.shortcut"])
    True
    >>> last_block_side_output("blocks.0.backcast", alive[2:])
    False
    >>> last_block_side_output("encoder", ["decoder", "out"])
    False
    """
    found = list(re.finditer(r"(?<=\.)\d+(?=\.)|^\d+(?=\.)", dead))
    if not found:
        return False
    at = found[-1]  # the innermost block number
    prefix, index, suffix = dead[:at.start()], int(at.group()), dead[at.end():]
    pattern = re.compile(re.escape(prefix) + r"(\d+)" + re.escape(suffix) + "$")
    others = [int(m.group(1)) for m in map(pattern.match, alive) if m is not None]
    own_block = f"{prefix}{index}."
    return index > 0 and sorted(others) == list(range(index)) and any(n.startswith(own_block) for n in alive)


def constant_tensors(named: Sequence[tuple[str, "torch.Tensor"]]) -> list[str]:
    """The names of the tensors of ``named`` (two values or more) whose values are all equal: a constructor's fill
    (a norm's ones and zeros, an attention's zero biases, a layer scale), which training never leaves in place. A
    layer that still holds one was never trained. One host read.

    >>> constant_tensors([("norm.weight", torch.ones(4)), ("fc.weight", torch.randn(4, 4)), ("s", torch.ones(1))])
    ['norm.weight']
    """
    named = [(n, p) for n, p in named if p.numel() >= 2]
    if not named:
        return []
    with torch.no_grad():
        device = named[0][1].device
        flags = torch.stack([(p.amax() == p.amin()).to(device) for _, p in named]).tolist()
    return [n for (n, _), flag in zip(named, flags) if flag]


def default_init_tensors(named: Sequence[tuple[str, "torch.Tensor"]]) -> list[str]:
    """The names of the weight matrices and kernels of ``named`` still at PyTorch's default ``nn.Linear`` /
    ``nn.Conv*`` initialisation: uniform on ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, every value inside the bound and
    the standard deviation that of the uniform (``bound / sqrt(3)``, to 10 %: three standard errors of a sample of
    256). The uniform's density is flat up to its edge, so the smallest training nudges some of the edge values past
    it: a trained tensor almost never stays inside. One host read.

    >>> fc = torch.nn.Linear(64, 32)
    >>> default_init_tensors([("fc.weight", fc.weight), ("w", torch.randn(32, 64) * 0.01)])
    ['fc.weight']
    """
    named = [(n, p) for n, p in named if p.dim() >= 2 and p.numel() >= 256 and p[0].numel() >= 2]
    if not named:
        return []
    with torch.no_grad():
        device = named[0][1].device
        flags = torch.stack([(within_default_bound(p) & ((p.float().std() * 3 ** 0.5 / _bound(p) - 1).abs() < 0.1))
                             .to(device) for _, p in named]).tolist()
    return [n for (n, _), flag in zip(named, flags) if flag]


def _bound(p: "torch.Tensor") -> float:
    """PyTorch's default ``nn.Linear`` / ``nn.Conv*`` bound for weight ``p``: ``1 / sqrt(fan_in)``."""
    return p[0].numel() ** -0.5


def within_default_bound(p: "torch.Tensor") -> "torch.Tensor":
    """Whether every value of weight ``p`` lies inside PyTorch's default bound ``1 / sqrt(fan_in)`` (the default draw,
    or anything smaller), as a 0-d bool tensor on ``p``'s device (no host read).

    >>> bool(within_default_bound(torch.nn.Linear(64, 32).weight)), bool(within_default_bound(torch.ones(4, 4)))
    (True, False)
    """
    return p.detach().abs().amax() <= _bound(p) * (1 + 1e-6)


def _stacked(name: str) -> str:
    """``name`` with its layer numbers replaced (``blocks.1.0.attn.w`` -> ``blocks.#.#.attn.w``)."""
    return re.sub(r"(?<=\.)\d+(?=\.)", "#", name)


def dead_parameter_message(names: Sequence[str], steps: Sequence[int], layer_live: Sequence[str]) -> str:
    """The finding's message for the parameters ``names`` (``steps`` measured steps each); ``layer_live``: the
    other tensors of their layers that did learn, to tell the reader the layer as a whole looked alive."""
    lo, hi = min(steps), max(steps)
    span = f"{lo}" if lo == hi else f"{lo} to {hi}"
    if len(names) == 1:
        subject = f"Parameter `{names[0]}` got"
    else:
        subject = f"{len(names)} parameters ({short_list([f'`{n}`' for n in names], limit=4)}) got"
    one = len(names) == 1
    text = (f"{subject} an exactly zero gradient on every one of the {span} measured steps in which "
            f"{'it' if one else 'they'} had one: nothing that reaches the loss depends on "
            f"{'it' if one else 'them'}, so {'it never learns' if one else 'they never learn'}")
    if layer_live:
        text += (f", while {short_list([f'`{n}`' for n in layer_live], limit=3)} in the same layer did (the layer's "
                 "summed gradient looks alive)")
    return text + "."


#: A group of a single tensor says nothing about what the user meant: layer-wise lr recipes that build one group
#: per tensor give an unused pooler's weight a group of its own without anyone choosing it.
MIN_GROUP_TENSORS = 2


def idle_groups(groups: Sequence[tuple[float, Sequence[Optional[int]]]], idle: Collection[int]) -> list[int]:
    """The optimizer parameter groups (indices into ``groups``) that the user set up to train and that never train.

    ``groups`` holds, per group, its largest learning rate and the layer of each of its trainable tensors (None when
    the tensor belongs to no tracked layer); ``idle`` the layers that never got a gradient because they never ran
    with autograd in training_step. A group fires when its lr is above 0, it holds at least
    :data:`MIN_GROUP_TENSORS` trainable tensors and every one of them sits in an idle layer: the user named exactly
    these parameters and gave them a step size, so they were meant to learn. An idle layer that shares its group with
    layers that learn (an unused pooler inside ``model.parameters()``, a teacher or EMA copy left in the module) says
    nothing about intent; a frozen group has no trainable tensor; a group with lr 0 is meant to stay still.

    >>> idle_groups([(1e-3, [4, 4, 5, 5]), (3e-3, [6, 6])], idle={4, 5})
    [0]
    >>> idle_groups([(1e-3, [1, 1, 4, 4]), (0.0, [4, 4]), (1e-3, [5])], idle={4, 5})  # shared, lr 0, one tensor
    []
    """
    idle = set(idle)
    return [g for g, (lr, layers) in enumerate(groups)
            if lr > 0 and len(layers) >= MIN_GROUP_TENSORS and all(i is not None and i in idle for i in layers)]


ADVICE = ("A tensor whose gradient is zero everywhere is multiplied by zero on its way to the loss: look for an input "
          "that is always zero where it is used (a missing-value mask the wrong way round, e.g. `isna()` passed as "
          "'observed', so every present value is masked out; features zero-filled or zeroed by a mask), every unit "
          "before it dead (see dead-activations), or a gate or mask that is always shut. If it is meant to stay "
          "fixed, set requires_grad_(False).")

CACHED_ADVICE = ("Compute these layers' outputs inside training_step with autograd on (encoding a small catalogue every "
                 "step costs little), or score a cache against a fresh in-step encoding of the batch's own positives; if "
                 "they are meant to stay fixed, set requires_grad_(False) and leave them out of the optimizer.")
NO_GRAD_ADVICE = ("Take torch.no_grad() off the training path: a `@torch.no_grad()` decorator on a method that forward "
                  "calls (an `encode()` or `embed()` kept for exporting or inference) or a `with torch.no_grad():` "
                  "block around these layers; wrap the export or inference call instead. If these layers are meant "
                  "to stay fixed, load their trained weights, set requires_grad_(False) and leave them out of the "
                  "optimizer.")

IDLE_GROUP_ADVICE = ("Run these layers inside training_step's graph: features cached through them before training (in "
                     "`on_fit_start` or `setup`, under no_grad) or a `torch.no_grad()` around them freeze them whatever "
                     "the optimizer says; cache the output of the layers below instead and apply these in "
                     "training_step. If they are meant to stay fixed, drop their group from the optimizer and set "
                     "requires_grad_(False).")

CANCELLED_ADVICE = ("Nothing to fix in the gradient path: the branch's value is exactly zero whatever the weights, e.g. a "
                    "PoolFormer token mixer `pool(x) - x` on a 1x1 map, which happens when the inputs are smaller than "
                    "the model was designed for (32x32 images through a 224x224 backbone with 32x downsampling). Use "
                    "larger inputs or fewer downsampling stages if the branch should contribute; otherwise its layers "
                    "are wasted parameters.")


#: Layers whose ``bias`` is a constant added to each output channel: its gradient is the sum of the output's gradient
#: over every sample and position, whatever the weights.
_SHIFT_BIAS_LAYERS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)


def shift_redundant_biases(dead: Sequence[str], alive: Collection[str], model: nn.Module) -> list[str]:
    """The ``dead`` parameters that are the output-shifting bias of a Linear / Conv layer whose ``weight`` is ``alive``.

    A bias's gradient is the output gradient summed over samples and positions; the weight's gradient is that same
    output gradient weighted by the inputs. With the weight learning, the output gradient is not zero, so a bias
    whose gradient is exactly zero on every step means the summed gradient cancels: the loss does not change when
    every output of a channel is shifted by one constant (a pairwise ``r_chosen - r_rejected`` of one value head, a
    BatchNorm right after the layer, a mean subtracted). The bias is redundant by design; the layer learns.

    >>> head = nn.Sequential(nn.Linear(4, 1))
    >>> shift_redundant_biases(["0.bias"], {"0.weight"}, head), shift_redundant_biases(["0.weight"], {"0.bias"}, head)
    (['0.bias'], [])
    """
    found = []
    for name in dead:
        owner, _, leaf = name.rpartition(".")
        if leaf != "bias" or f"{owner}.weight" not in alive:
            continue
        try:
            module = model.get_submodule(owner)
        except AttributeError:
            continue
        if isinstance(module, _SHIFT_BIAS_LAYERS) and module.bias is not None and module.bias.dim() == 1:
            found.append(name)
    return found


SHIFT_ADVICE = ("Nothing to fix if the loss compares outputs of this layer with each other (a pairwise ranking or "
                "Bradley-Terry loss on one value head) or a normalisation follows it (BatchNorm after a Linear/Conv): "
                "drop the bias (`bias=False`) to save the parameter. If each output is meant to be scored on its own, "
                "look for a softmax or normalisation over the wrong dimension.")

"""Parameters the loss reaches that the LightningModule does not own: the pure functions behind that
``optimizer-coverage`` finding.

Layers kept in a plain Python list (``self.convs = [GraphConv(...) for ...]`` instead of ``nn.ModuleList``), a dict,
or a network created outside the module are not registered: ``self.parameters()`` never yields them, so the
optimizer built from it never holds them, and they stay at their random initialisation while the registered layers
learn around them. Nothing errors: they even receive gradients.

The signal is exact: an ``nn.Parameter`` with ``requires_grad`` that the first step's loss graph reaches (an
``AccumulateGrad`` leaf), that is not a parameter of the LightningModule. Plain tensors with ``requires_grad`` (a
WGAN-GP interpolate, an adversarial perturbation) are not ``nn.Parameter`` and stay silent; a frozen reference kept
outside the module (``requires_grad=False``, or run under ``torch.no_grad()``) never shows in the graph.

Example::

    >>> import torch
    >>> from torch import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.blocks, self.head = [nn.Linear(3, 3)], nn.Linear(3, 1)
    >>> net = Net()
    >>> loss = net.head(net.blocks[0](torch.ones(2, 3))).sum()
    >>> found = graph_parameters(loss)
    >>> [p.shape for p in found if id(p) not in {id(q) for q in net.parameters()}]
    [torch.Size([3, 3]), torch.Size([3])]
    >>> sorted(name for name, _, _ in hidden_parameters(net).values())
    ['blocks[0].bias', 'blocks[0].weight']
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from lightning_sanity.checks.loss_graph import GraphTooLarge, graph_nodes

#: ``nn.Module``'s own attributes (hooks, registries): never user state that could hide a layer.
_MODULE_INTERNALS = frozenset(vars(nn.Module()))


def graph_parameters(loss: Any) -> Optional[list[torch.Tensor]]:
    """The ``nn.Parameter`` leaves with ``requires_grad`` that ``loss``'s autograd graph reaches, each once; None
    when the loss has no graph or the graph is too large to walk. Read-only: the nodes are only visited."""
    if not isinstance(loss, torch.Tensor) or loss.grad_fn is None:
        return None
    found: dict[int, torch.Tensor] = {}
    try:
        for node in graph_nodes(loss):
            leaf = getattr(node, "variable", None) if type(node).__name__ == "AccumulateGrad" else None
            if isinstance(leaf, nn.Parameter) and leaf.requires_grad:
                found.setdefault(id(leaf), leaf)
    except GraphTooLarge:
        return None
    return list(found.values())


def hidden_parameters(root: nn.Module) -> dict[int, tuple[str, str, Optional[bool]]]:
    """Parameters held in plain attributes of ``root``'s modules (lists, tuples, dicts, hidden ``__dict__`` entries),
    by id: their name (``convs[0].lin.weight``), the attribute that holds them (``convs``) and whether the module
    that holds them is in training mode (None for a bare parameter). Registered parameters are left out."""
    registered = {id(p) for p in root.parameters()}
    out: dict[int, tuple[str, str, Optional[bool]]] = {}
    for prefix, module in root.named_modules():
        for attr, value in vars(module).items():
            if attr in _MODULE_INTERNALS or not isinstance(value, (list, tuple, dict, nn.Module, nn.Parameter)):
                continue
            base = f"{prefix}.{attr}" if prefix else attr
            items = (value.items() if isinstance(value, dict) else enumerate(value)
                     if isinstance(value, (list, tuple)) else [(None, value)])
            for key, item in items:
                name = base if key is None else f"{base}[{key!r}]" if isinstance(key, str) else f"{base}[{key}]"
                if isinstance(item, nn.Parameter):
                    if id(item) not in registered:
                        out.setdefault(id(item), (name, base, None))
                elif isinstance(item, nn.Module):
                    for sub, owner in item.named_modules():
                        for pname, p in owner.named_parameters(recurse=False):
                            if id(p) not in registered:
                                full = ".".join(s for s in (name, sub, pname) if s)
                                out.setdefault(id(p), (full, base, owner.training))
    return out


def unregistered_in_graph(loss: Any, root: nn.Module, held: list) -> Optional[dict[str, Any]]:
    """Figures on the parameters ``loss`` reaches that ``root`` does not own and no optimizer holds, else None.

    ``names`` are those found in plain attributes of ``root`` (the others are counted as ``elsewhere``),
    ``containers`` the attributes that hold them;
    ``all_eval`` is True when every one of them was found and sits in a module in eval mode (Lightning puts every
    registered module in training mode, so eval mode outside it is the user's doing: a fixed reference model).
    """
    reached = graph_parameters(loss)
    if not reached:
        return None
    known = {id(p) for p in root.parameters()} | {id(p) for p in held}
    missing = [p for p in reached if id(p) not in known]
    if not missing:
        return None
    hidden = hidden_parameters(root)
    ids = {id(p) for p in missing}
    named = [entry for pid, entry in hidden.items() if pid in ids]  # in the module's order, not the graph's
    return {
        "tensors": len(missing),
        "values": int(sum(p.numel() for p in missing)),
        "names": [n for n, _, _ in named],
        "containers": list(dict.fromkeys(c for _, c, _ in named)),
        "elsewhere": len(missing) - len(named),
        "shapes": [list(p.shape) for p in missing[:5]],
        "all_eval": len(named) == len(missing) and all(training is False for _, _, training in named),
    }


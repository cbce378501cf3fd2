"""Train/eval modes of the modules whose behaviour depends on them: BatchNorm and Dropout.

Pure functions over an ``nn.Module``; :class:`lightning_sanity.callbacks.train_mode.TrainModeMonitor` decides when
to call them. A module "depends on its mode" when ``train()``/``eval()`` changes what it computes: BatchNorm
(batch statistics and running-statistics updates versus running statistics) and Dropout with ``p > 0``.

Example::

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.0), nn.Dropout(0.5))
    >>> [name for name, _ in mode_dependent_modules(net)]
    ['1', '3']
    >>> _ = net[1].eval()
    >>> eval_mode_modules(mode_dependent_modules(net))
    ['1']
    >>> split_by_frozen(net, ['1'])
    ([], ['1'])
    >>> _ = net[1].requires_grad_(False)
    >>> split_by_frozen(net, ['1'])
    (['1'], [])
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

#: the dropout modules whose randomness depends on their train/eval mode.
DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def is_batchnorm(module: nn.Module) -> bool:
    """BatchNorm of any dimension, SyncBatchNorm included."""
    return isinstance(module, _BatchNorm)


def module_kinds(modules: Sequence[nn.Module]) -> str:
    """How a message names a set of mode-dependent modules: "BatchNorm", "Dropout" or "BatchNorm/Dropout"."""
    bn = sum(1 for m in modules if is_batchnorm(m))
    if bn == len(modules):
        return "BatchNorm"
    return "Dropout" if bn == 0 else "BatchNorm/Dropout"


def mode_dependent_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(name, module)`` of every BatchNorm and every Dropout with ``p > 0`` in ``model``, in definition order.

    A Dropout with ``p == 0`` computes the identity in both modes, so its mode cannot matter.
    """
    out = []
    for name, module in model.named_modules():
        if is_batchnorm(module) or (isinstance(module, DROPOUTS) and float(getattr(module, "p", 0.0)) > 0.0):
            out.append((name, module))
    return out


def eval_mode_modules(modules: Sequence[tuple[str, nn.Module]]) -> list[str]:
    """Names of the modules of ``modules`` that are in eval mode (``training`` is False)."""
    return [name for name, module in modules if not module.training]


def _owner_parameters(model: nn.Module, name: str) -> list[nn.Parameter]:
    """The parameters that decide whether module ``name`` belongs to a frozen part of ``model``.

    A module's own parameters when it has any (an affine BatchNorm); otherwise those of its nearest ancestor
    that has parameters (a Dropout inside a pretrained block belongs to that block).
    """
    parts = name.split(".") if name else []
    for depth in range(len(parts), -1, -1):
        prefix = ".".join(parts[:depth])
        module = model.get_submodule(prefix) if prefix else model
        params = list(module.parameters())
        if params:
            return params
    return []


def is_frozen(model: nn.Module, name: str) -> bool:
    """True when module ``name`` of ``model`` sits in a part whose parameters are all frozen (``requires_grad`` off)."""
    params = _owner_parameters(model, name)
    return bool(params) and not any(p.requires_grad for p in params)


def split_by_frozen(model: nn.Module, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(frozen, trainable)``: ``names`` split by :func:`is_frozen`."""
    frozen = [n for n in names if is_frozen(model, n)]
    return frozen, [n for n in names if n not in frozen]


def has_initial_statistics(module: nn.Module) -> bool:
    """True when a BatchNorm's running statistics are still PyTorch's initial mean 0 / variance 1 (or it keeps none).

    Statistics that differ were learnt: loaded from a pretrained checkpoint, or accumulated in train mode.

    >>> bn = nn.BatchNorm1d(3)
    >>> has_initial_statistics(bn)
    True
    >>> _ = bn.running_mean.fill_(0.5)
    >>> has_initial_statistics(bn)
    False
    """
    mean, var = getattr(module, "running_mean", None), getattr(module, "running_var", None)
    if mean is None or var is None:
        return True
    return bool((mean == 0).all()) and bool((var == 1).all())


def never_learned_statistics(module: nn.Module) -> bool:
    """True when a BatchNorm keeps running statistics and they are still the initial 0/1, never updated nor loaded.

    Unlike :func:`has_initial_statistics`, a BatchNorm without running statistics (``track_running_stats=False``
    normalises with batch statistics in both modes) is not counted.

    >>> never_learned_statistics(nn.BatchNorm1d(3))
    True
    >>> never_learned_statistics(nn.BatchNorm1d(3, track_running_stats=False))
    False
    """
    if getattr(module, "running_mean", None) is None or getattr(module, "running_var", None) is None:
        return False
    return has_initial_statistics(module)


def owner_fingerprint(model: nn.Module, name: str) -> torch.Tensor:
    """A cheap fingerprint of the parameters that own module ``name`` (:func:`is_frozen`'s): sums, one per tensor.

    Compared at the end of training, it tells a part that stayed as it was from one updated outside the optimizer
    (an EMA teacher, a momentum encoder: frozen by ``requires_grad`` but copied into at every step).
    """
    params = _owner_parameters(model, name)
    if not params:
        return torch.zeros(0)
    with torch.no_grad():
        return torch.stack([p.detach().double().sum() for p in params])


def summarize_names(names: Sequence[str], limit: int = 5) -> str:
    """``"a, b, c and 4 more"``: a short list of module names for a message (the root module shows as ``<root>``)."""
    shown = [f"`{n or '<root>'}`" for n in names[:limit]]
    rest = len(names) - len(shown)
    return ", ".join(shown) + (f" and {rest} more" if rest > 0 else "")

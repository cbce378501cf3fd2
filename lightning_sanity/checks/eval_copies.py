"""Which eval-mode modules are outside training: a copy of the model that no optimizer holds and backward never
reaches (an EMA / SWA copy, a momentum teacher), whose eval mode is therefore not a train-mode bug.

Pure functions over an ``nn.Module``; :class:`lightning_sanity.callbacks.train_mode.TrainModeMonitor` calls them.
A module is judged by the parameters that own it (:func:`lightning_sanity.checks.modes.is_frozen`'s: its own, else
its nearest ancestor's). ``optimizer-coverage`` judges the same tensors the same way.

Example::

    >>> from torch import nn
    >>> net = nn.ModuleDict({"model": nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)),
    ...                      "ema": nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))})
    >>> held = {id(p) for p in net["model"].parameters()}
    >>> outside_optimizers(net, ["model.1", "ema.1"], held)
    ['ema.1']
    >>> received_gradient(net, ["ema.1"])
    []
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from torch import nn

from lightning_sanity.checks.modes import _owner_parameters


def outside_optimizers(model: nn.Module, names: Sequence[str], held: Collection[int]) -> list[str]:
    """The modules of ``names`` none of whose owning parameters is held by an optimizer (``held``: their ``id``).

    With no optimizer at all (``held`` empty) nothing can be told apart, so nothing is returned.
    """
    if not held:
        return []
    out = []
    for name in names:
        params = _owner_parameters(model, name)
        if params and not any(id(p) in held for p in params):
            out.append(name)
    return out


def received_gradient(model: nn.Module, names: Sequence[str]) -> list[str]:
    """The modules of ``names`` whose owning parameters hold a gradient (read, never written).

    A tensor no optimizer holds is not zeroed by ``optimizer.zero_grad()``, but Lightning clears every ``.grad``
    before each validation: read right after a training backward, ``.grad is not None`` says backward reached it.
    """
    return [n for n in names if any(p.grad is not None for p in _owner_parameters(model, n))]

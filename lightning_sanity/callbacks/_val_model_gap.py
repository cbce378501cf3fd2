"""Glue for ``val-divergence``'s model gap (:mod:`lightning_sanity.checks.val_model_gap`): pairs the last logged
validation loss that has one with prediction dynamics' fixed-batch evaluation at the same step (same weights;
``facts["fixed_batch_evals"]``: validation samples, the last few snapshots), and leaves out the runs where the two
need not be the same model: several validation loaders, a callback that swaps averaged weights in for validation,
a copy of a trained module kept outside the optimizer (an EMA or SWA model ``validation_step`` may call instead)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional

import torch

from lightning_sanity.checks.val_model_gap import judge_model_gap
from lightning_sanity.checks.validation import Divergence

log = logging.getLogger(__name__)

#: Callback class names that swap averaged weights into the module for validation (Lightning's
#: ``StochasticWeightAveraging`` and ``WeightAveraging``/``EMAWeightAveraging``, EMA callbacks of other libraries).
_AVERAGING_WORDS = ("averag", "ema", "swa")


def _signature(module: torch.nn.Module) -> tuple:
    return tuple(tuple(p.shape) for p in module.parameters())


def shadow_copy(pl_module: torch.nn.Module, optimizers: Sequence[Any]) -> bool:
    """Whether some submodule, none of whose parameters any optimizer holds, has the parameter shapes of a
    submodule that trains: a copy (EMA, SWA, a target network) that validation may run instead.

    >>> net = torch.nn.Linear(2, 2); root = torch.nn.ModuleDict({"net": net, "ema": torch.nn.Linear(2, 2)})
    >>> shadow_copy(root, [torch.optim.SGD(net.parameters(), lr=0.1)])
    True
    """
    held = {id(p) for opt in optimizers for group in opt.param_groups for p in group["params"]}
    trained, idle = set(), set()
    for _, sub in pl_module.named_modules():
        params = list(sub.parameters())
        if not params:
            continue
        inside = [id(p) in held for p in params]
        if all(inside):
            trained.add(_signature(sub))
        elif not any(inside):
            idle.add(_signature(sub))
    return bool(trained & idle)


def model_gap(trainer: Any, pl_module: torch.nn.Module, facts: dict, val: Sequence[float],
              val_steps: Sequence[int], train: Sequence[float], baseline: Optional[float],
              val_rows: int) -> Optional[Divergence]:
    """The model-gap finding, or None (nothing found, or the run is one where it is not judged)."""
    if baseline is None or not val or len(val_steps) != len(val) or len(train) != len(val):
        return None
    steps = {int(e["step"]): e for e in facts.get("fixed_batch_evals") or () if e.get("targets") is not None}
    last = next((i for i in reversed(range(len(val))) if val_steps[i] in steps), None)
    if last is None:
        return None
    found = steps[val_steps[last]]
    try:
        if len(trainer.num_val_batches) != 1:
            return None
        if any(word in type(cb).__name__.lower() for cb in trainer.callbacks for word in _AVERAGING_WORDS):
            return None
        if shadow_copy(pl_module, trainer.optimizers):
            return None
        return judge_model_gap(val[last], found["probs"], found["targets"], baseline, train[last], val_rows,
                               smoothing=float(facts.get("label_smoothing") or 0.0),
                               weight=facts.get("class_weight"), prior=facts.get("label_prior"))
    except Exception:  # never lose the run over a diagnostic
        log.debug("val-divergence model gap failed", exc_info=True)
        return None

"""Glue for ``val-divergence``'s model gap (:mod:`lightning_sanity.checks.val_model_gap`). Prediction dynamics
evaluates its fixed batch of validation samples the way every fixed-batch check calls the model, right after each
validation run (same weights; one forward of at most 64 samples per validation run, under ``no_grad``, eval mode
and ``isolate_rng``): ``facts["fixed_batch_evals"]``. ``val-divergence`` pairs the last validation loss with the
evaluation at its step, and leaves out the runs where the two need not be the same model: several validation
loaders, a callback that swaps averaged weights in for validation, a copy of a trained module kept outside the
optimizer (an EMA or SWA model ``validation_step`` may call instead)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Optional

import torch
from lightning.fabric.utilities.apply_func import move_data_to_device

from lightning_sanity.batch import split_batch
from lightning_sanity.callbacks._extra_forward import eval_mode
from lightning_sanity.callbacks._fixed_batch import Unusable, call_model
from lightning_sanity.checks.outputs import output_kind, probabilities
from lightning_sanity.checks.val_model_gap import judge_model_gap
from lightning_sanity.replays.rng import isolate_rng
from lightning_sanity.checks.validation import Divergence

log = logging.getLogger(__name__)

#: Callback class names that swap averaged weights into the module for validation (Lightning's
#: ``StochasticWeightAveraging`` and ``WeightAveraging``/``EMAWeightAveraging``, EMA callbacks of other libraries).
_AVERAGING_WORDS = ("averag", "ema", "swa")


#: The recognised loss call's share of the training loss that counts as the whole of it.
MAIN_SHARE_TOLERANCE = 0.02
#: Largest output (samples x classes) kept per evaluation, on the CPU.
_MAX_VALUES = 1 << 16


def evaluate_after_validation(cb: Any, trainer: Any, pl_module: torch.nn.Module, batch: Any) -> None:
    """Evaluate ``cb``'s (prediction dynamics') fixed batch of validation samples and keep the class probabilities
    and hard labels in ``facts["fixed_batch_evals"]`` (the last one); only for a classifier whose output is small."""
    if batch is None or not trainer.is_global_zero:
        return
    facts = cb.collector(trainer).facts
    try:
        batch = move_data_to_device(batch, pl_module.device)
        x, y = split_batch(batch, cb.get_input, cb.get_target)
        if x is None or not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dim() != 1:
            return
        with isolate_rng(), torch.no_grad(), eval_mode(pl_module):
            out = call_model(pl_module, batch, x, cb.forward_fn)
        if out.dim() != 2 or out.numel() > _MAX_VALUES or output_kind(out, y, facts.get("loss_kind")) != "classification":
            return
        probs = probabilities(out, "classification", facts.get("loss_kind")).float().cpu()
        facts["fixed_batch_evals"] = [{"step": trainer.global_step, "probs": probs, "targets": y.cpu()}]
    except Unusable:
        return
    except Exception:  # never lose the run over a diagnostic
        log.debug("val-divergence fixed-batch evaluation failed", exc_info=True)


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
    # The recognised cross-entropy must be the whole training loss: a validation loss that adds auxiliary heads or
    # regularisers to it is not the figure recomputed here.
    share = facts.get("main_loss_share")
    if not isinstance(share, (int, float)) or abs(share - 1) > MAIN_SHARE_TOLERANCE:
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

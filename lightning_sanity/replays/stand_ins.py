"""What stands in for the Trainer's parts while a step is replayed without a Trainer.

A Trainer would run a whole fit loop that cannot start at an arbitrary step, and would draw from the random
generators: the replay gives ``training_step`` the recorded settings, optimizers that do nothing when the real
ones cannot be built, and ``clip_gradients`` done directly on the parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable, Optional

import torch
from lightning.pytorch import LightningModule
from torch import nn


class _ReplayTrainer:
    """Stands in for the Trainer during a replay: the recorded settings, nothing that runs a loop."""

    def __init__(self, fields: Mapping[str, Any], optimizers: list, schedulers: list) -> None:
        self.__dict__.update(dict(fields))
        self.__dict__.update(
            training=True, sanity_checking=False, validating=False, testing=False, predicting=False,
            logger=None, loggers=[], callbacks=[], optimizers=optimizers, lr_scheduler_configs=schedulers,
            callback_metrics={}, logged_metrics={}, progress_bar_metrics={}, should_stop=False, barebones=False,
        )
        self.__dict__.setdefault("is_global_zero", True)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"`trainer.{name}` is not available while replaying a step: the replay runs `training_step` without a "
            "Trainer. Read it once in `setup`/`on_fit_start` and keep it on the module if the step needs it."
        )


class _NullOptimizer:
    """Used in replays of manual optimization when the model's optimizers cannot be built: steps do nothing."""

    param_groups: list = []

    def step(self, closure: Optional[Callable] = None) -> Any:
        return closure() if closure is not None else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass


def _attached_trainer(model: nn.Module) -> Any:
    if not isinstance(model, LightningModule):
        return None
    try:
        return model.trainer
    except RuntimeError:  # not attached
        return None


def _clip_gradients(model: nn.Module) -> Callable:
    def clip(optimizer: Any, gradient_clip_val: Optional[float] = None, gradient_clip_algorithm: Optional[str] = None) -> None:
        if gradient_clip_val is None:
            return
        params = [p for p in model.parameters() if p.grad is not None]
        if gradient_clip_algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, gradient_clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, gradient_clip_val)

    return clip

"""The ``sanity/bn_*`` TensorBoard scalars of :class:`~lightning_sanity.callbacks.batchnorm.BatchNormMonitor` (the
tags are listed in its docstring): the custom-scalars layout, and one line per layer at logging steps.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl

from lightning_sanity import tensorboard
from lightning_sanity.callbacks._batchnorm_state import LayerState, StepFigures


def add_batchnorm_layout(trainer: "pl.Trainer") -> None:
    """One custom-scalars chart per quantity, section ``sanity: batchnorm``."""
    for title, quantity in (("running variance, channel mean", "bn_running_var_mean"),
                            ("running variance, channel max", "bn_running_var_max"),
                            ("batch variance / running variance", "bn_batch_ratio")):
        tensorboard.add_layout_chart(trainer, "sanity: batchnorm", title, tensorboard.tag(quantity, ".*"))


def log_batchnorm_scalars(trainer: "pl.Trainer", state: LayerState, step: StepFigures, logging_step: int) -> None:
    """Every layer's running variance (channel mean and max) and batch ratio at ``logging_step``."""
    maxes = step.max_after()  # one host read per logging step
    metrics: dict[str, float] = {}
    for name, mean, peak, ratio in zip(state.names, step.mean_after, maxes, step.batch_ratio(state)):
        label = name or "model"
        metrics[tensorboard.tag("bn_running_var_mean", label)] = mean
        metrics[tensorboard.tag("bn_running_var_max", label)] = peak
        if math.isfinite(ratio):
            metrics[tensorboard.tag("bn_batch_ratio", label)] = ratio
    tensorboard.log_scalars(trainer, metrics, logging_step)

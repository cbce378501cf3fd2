"""The first training step as the loss inspector records it, shared by its glue modules.

:class:`_Observation` is what :class:`~lightning_sanity.callbacks.loss_inspector.LossInspector` records per
recognised loss call (before the call runs, completed after it), :class:`_FirstStep` the rest of what it knows of
that step; ``_NAMES`` gives each loss kind the name users call it by, in messages.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

import lightning.pytorch as pl
import torch

from lightning_sanity.checks import losses as L
from lightning_sanity.checks.loss_expectations import LossExpectation

_RECOGNISED = ("cross_entropy, nll_loss, binary_cross_entropy(_with_logits), mse_loss, l1_loss, smooth_l1_loss, "
               "huber_loss, kl_div, gaussian_nll_loss, poisson_nll_loss (functional or nn.Module)")
_NAMES = {
    "cross_entropy": "cross_entropy", "nll": "nll_loss", "binary_cross_entropy": "binary_cross_entropy",
    "binary_cross_entropy_with_logits": "binary_cross_entropy_with_logits", "mse": "mse_loss", "l1": "l1_loss",
    "smooth_l1": "smooth_l1_loss", "huber": "huber_loss", "kl_div": "kl_div", "gaussian_nll": "gaussian_nll_loss",
    "poisson_nll": "poisson_nll_loss",
}

@dataclasses.dataclass
class _Observation:
    """One recognised loss call of the first step, with its figures."""

    call: L.LossCall
    module: Optional[str]
    depends_on_model: bool
    activation: Optional[str] = None
    target_is_batch: bool = False  # the call's target is the batch's target (same tensor, or same values)  # a squashing activation applied to the prediction (sigmoid, tanh, softmax)
    observed: Optional[float] = None  # per element, comparable with the expectation
    reduced: Optional[float] = None  # the call's own (reduced) output
    expectation: Optional[LossExpectation] = None
    mean_prediction: Optional[torch.Tensor] = None
    margin_logits: bool = False  # the prediction holds logits the target edited (ArcFace / CosFace margin heads)
    cosine_logits: bool = False  # the prediction is a scaled cosine similarity (checks/loss_graph.is_scaled_cosine)
    #: the share of the elements a 0/1 mask keeps, when the per-element loss was masked (checks/masked_loss.py)
    mask_share: Optional[float] = None
    #: the target was computed from the model's parameters (``Lineage.made_by_model``: "trained" / "frozen"): a
    #: bootstrapped (TD) or distillation target, not a fixed function of the batch
    target_from_model: Optional[str] = None


@dataclasses.dataclass
class _FirstStep:
    """What the inspector knows of the first training step, reset at each fit."""

    stage: str = "waiting"  # waiting -> watching -> done
    observations: list[_Observation] = dataclasses.field(default_factory=list)  # calls that returned
    pending: list[_Observation] = dataclasses.field(default_factory=list)  # calls entered, not yet returned
    #: why ``initial-loss`` (and, without any observation, ``loss-input``) is skipped, if it is
    skip_reason: Optional[str] = None
    loss_requires_grad: bool = True
    pairwise: bool = False  # loss-input found a prediction-target pairwise broadcast (no recognised call needed)
    trainer: Optional[pl.Trainer] = None
    batch_target: Any = None
    batch_input: Any = None
    #: ``grad_fn`` of each recognised call's output, to tell them from terms of the loss's own (dropped after use)
    loss_nodes: list = dataclasses.field(default_factory=list)

"""Which layers without a gradient ran in the forward pass, and whether autograd was recording there.

The norm monitor's ``dead-gradient`` tells "never called in training_step" from "cut off from the loss" from
"runs under torch.no_grad()" with one forward hook per such layer, armed for one batch after the first step.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.callbacks._compiled import hookable_modules
from lightning_sanity.callbacks.norm_meter import StepRow, any_layers
from lightning_sanity.checks import layers as LM
from lightning_sanity.cost import timed


class GradientProbe:
    """Layers that are trainable but got no gradient in the first step, watched for one batch: did they run,
    and with autograd recording? (Tells "never called" from "cut off from the loss" from "under no_grad".)"""

    def __init__(self) -> None:
        self.targets: list[str] = []
        self.handles: list[Any] = []
        self.ran: dict[str, bool] = {}
        self.armed_once = False

    def plan(self, layers: LM.LayerMap, row: StepRow) -> None:
        """After the first step: layers that are trainable but got no gradient are watched for one batch."""
        L = len(layers)
        missing = any_layers(row.patterns, "trainable", L) & ~any_layers(row.patterns, "has_grad", L)
        self.targets = [layers.names[i] for i in missing.nonzero().flatten().tolist()]

    def arm(self, pl_module: torch.nn.Module) -> None:
        modules = dict(hookable_modules(pl_module))
        for name in self.targets:
            module = modules.get("" if name == LM.ROOT else name)
            if module is None:
                continue

            def hook(_module, _args, _output, name=name) -> None:
                # Only notes that the module ran, and whether autograd was recording: no observer effect.
                self.ran[name] = self.ran.get(name, False) or torch.is_grad_enabled()

            self.handles.append(module.register_forward_hook(timed(hook)))
        self.armed_once = True

    def disarm(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

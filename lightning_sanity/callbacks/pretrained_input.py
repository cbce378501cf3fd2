r"""
Pretrained input scale
^^^^^^^^^^^^^^^^^^^^^^

``input-scale`` for frozen pretrained layers: on the first training batch, the per-channel spread of the input of
the first BatchNorm that runs in eval mode with learned running statistics, against those statistics
(:mod:`lightning_sanity.checks.pretrained_input`).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl
import torch
from torch import nn
from typing_extensions import override

from lightning_sanity.callbacks.base import SanityCallback
from lightning_sanity.checks import pretrained_input as PI
from lightning_sanity.checks.modes import has_initial_statistics, is_batchnorm
from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)
CHECK = "input-scale"


class PretrainedInputScale(SanityCallback):
    r"""Warn (``input-scale``, kind ``frozen-statistics``) when the inputs reach a frozen pretrained BatchNorm on
    another scale than its running statistics were measured on: the median over channels of the batch's standard
    deviation over the running one is above 4 or below 1/4.

    Only BatchNorms that normalise with their running statistics during training (eval mode) and whose statistics
    were learned (loaded or accumulated, not the initial 0/1) are looked at; of these, the first one the forward
    pass reaches is judged, so a new head being trained downstream cannot cause it. A model without such a layer is
    not looked at.

    Cost: at ``on_train_batch_start`` of the first batch, forward hooks on the candidate BatchNorms; the first to
    run computes a per-channel standard deviation of its input under ``no_grad``; the hooks are removed and the
    figures read once (one host read) at that batch's end. Nothing else. No TensorBoard tags.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.pretrained_input import PretrainedInputScale
        >>> trainer = Trainer(callbacks=[PretrainedInputScale()], logger=False)
    """

    checks = (CHECK,)

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.revive()
        self._hooks: list[Any] = []
        self._seen: Any = None  # (layer name, batch std, running std), from the first candidate to run

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self._reset()

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                             batch_idx: int) -> None:
        self.retire("on_train_batch_start")
        if not self.is_enabled(CHECK):
            self.retire("on_train_batch_end")
            return
        try:
            for name, module in pl_module.named_modules():
                if (is_batchnorm(module) and not module.training and getattr(module, "running_var", None) is not None
                        and not has_initial_statistics(module)):
                    self._hooks.append(module.register_forward_hook(self._hook(name)))
        except Exception:  # never lose the run over a diagnostic
            log.debug("pretrained input hooks failed", exc_info=True)
        if not self._hooks:
            self.retire("on_train_batch_end")

    def _hook(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            if self._seen is not None or module.training or not args or not isinstance(args[0], torch.Tensor):
                return
            try:
                with torch.no_grad():
                    x = args[0].detach().float()
                    dims = [0] + list(range(2, x.dim()))
                    self._seen = (name, x.var(dims).sqrt(), (module.running_var.float() + module.eps).sqrt())
            except Exception:  # never lose the run over a diagnostic
                log.debug("pretrained input statistics failed", exc_info=True)
        return hook

    def _remove(self) -> None:
        for handle in self._hooks:
            handle.remove()
        self._hooks = []

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.retire("on_train_batch_end")
        self._remove()
        if self._seen is None:
            return
        name, batch_std, running_std = self._seen
        try:
            verdict = PI.judge_statistics(batch_std.cpu(), running_std.cpu(), name)
        except Exception:  # never lose the run over a diagnostic
            log.debug("pretrained input judgement failed", exc_info=True)
            return
        if verdict is None:
            return
        wider = "wider" if verdict["ratio"] > 1 else "narrower"
        factor = verdict["ratio"] if verdict["ratio"] > 1 else 1 / verdict["ratio"]
        self.report(
            trainer, CHECK, Severity.WARNING,
            f"The inputs are not on the scale the frozen pretrained layers expect: at `{name}` (eval mode, learned "
            f"running statistics) the pre-activations of the first batch are {factor:.1f}x {wider} than the "
            "statistics it was trained with (median over channels): the frozen layers pass distorted features on.",
            "Apply the normalisation the weights were pretrained with (the same mean/std, the same 0..1 or 0..255 "
            "pixel range) to every split's inputs; a `transforms.Normalize` left in the pretraining code is the "
            "usual cause.",
            where=name, data=verdict, key="frozen-statistics",
        )

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._remove()  # a crash inside the first step leaves them registered

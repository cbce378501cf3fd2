r"""
Activation monitor
^^^^^^^^^^^^^^^^^^

At a low cadence, measure how many units of each activation layer are dead (ReLU never positive) or
saturated (tanh/sigmoid at their flat ends), and judge them.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from torch import nn
from typing_extensions import override

from lightning_sanity.callbacks._compiled import hookable_modules
from lightning_sanity.cadence import trainer_chart_every
from lightning_sanity import tensorboard
from lightning_sanity.callbacks._output_range import OutputRangeWatch
from lightning_sanity.callbacks.base import SanityCallback, Threshold, check_int
from lightning_sanity.cost import timed
from lightning_sanity.checks import activations as A
from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)

_FALLBACK_EVERY = 50


class ActivationMonitor(SanityCallback):
    r"""Measure dead and saturated units of activation modules on a few training batches; report when most
    units of a layer are dead or saturated on two measurements in a row (check ``dead-activations``).

    Measured modules: ``nn.ReLU``, ``ReLU6``, ``GELU``, ``SiLU``, ``Mish``, ``Hardswish`` (dead units: a unit
    never positive over the batch) and ``nn.Tanh``, ``Sigmoid``, ``Hardtanh``, ``Hardsigmoid`` (saturated
    outputs). Activations applied as functions (``F.relu``) are not modules and cannot be seen. A tanh/sigmoid
    that no parametered layer follows (the model's output, e.g. a sigmoid before ``BCELoss``) is not judged for
    saturation: confident outputs are meant to be saturated.

    Forward hooks are registered in ``on_train_batch_start`` of a measuring batch and removed in
    ``on_train_batch_end`` (or ``on_exception`` when training raises), so other batches run without hooks. The
    hooks only read the outputs (a max or a comparison under ``torch.no_grad()``). Measuring batches: the first
    one, then every ``activations_every_n_steps``-th; results are read (one host-device transfer) on the
    measuring batches after the first.

    TensorBoard tags (scalars on global rank 0; ``<module>`` as in ``named_modules()``, with ``#<n>`` appended
    for the n-th call of a module used several times in one forward pass):

    - ``sanity/dead_fraction/<module>``: fraction of units never positive over the batch.
    - ``sanity/saturated_fraction/<module>``: fraction of outputs saturated.

    A custom-scalars chart for each (section ``sanity: activations``), once it has data.

    Thresholds (``thresholds={"dead-activations": {...}}`` or :meth:`set_thresholds`): ``dead_fraction`` and
    ``saturated_fraction`` (the share of a layer's units dead, or of its outputs saturated, on two measurements in a
    row that fires), ``tanh_limit`` and ``sigmoid_margin`` (what counts as saturated: ``|tanh| > tanh_limit``, a
    sigmoid within ``sigmoid_margin`` of 0 or 1; these also change the logged ``saturated_fraction``).

    Args:
        activations_every_n_steps: measure every this many training batches; None follows the Trainer's
            ``log_every_n_steps`` fitted to the planned run (:mod:`lightning_sanity.cadence`; 50 when that is 0).

    Raises:
        ValueError: ``activations_every_n_steps`` is not a positive integer or None.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.activations import ActivationMonitor
        >>> trainer = Trainer(callbacks=[ActivationMonitor(activations_every_n_steps=100)], logger=False)
    """

    checks = ("dead-activations",)
    threshold_specs = {
        "dead-activations": {
            "dead_fraction": Threshold(
                A.DEAD_FRACTION, "share of a layer's units never positive over a batch, on two measurements in a "
                "row, that fires", maximum=1.0),
            "saturated_fraction": Threshold(
                A.SATURATED_FRACTION, "share of a tanh/sigmoid layer's outputs saturated, on two measurements in a "
                "row, that fires", maximum=1.0),
            "tanh_limit": Threshold(A.TANH_LIMIT, "a tanh output beyond +-this is saturated", maximum=1.0),
            "sigmoid_margin": Threshold(
                A.SIGMOID_MARGIN, "a sigmoid output within this of 0 or 1 is saturated", maximum=0.5),
        },
    }

    def __init__(self, activations_every_n_steps: Optional[int] = None) -> None:
        check_int("activations_every_n_steps", activations_every_n_steps, minimum=1, optional=True)
        self.every_n_steps = activations_every_n_steps
        self._reset()

    def _reset(self) -> None:
        self._active = False
        self._limits: dict[str, float] = {}  # what counts as saturated, read from the thresholds at fit start
        self._every = _FALLBACK_EVERY
        self._targets: list[tuple[str, nn.Module, str]] = []
        self._layers: list[nn.Module] = []
        self._handles: list[Any] = []
        self._batches = 0
        self._measuring = False
        self._order = 0
        self._last_layer_order = -1
        self._calls: dict[str, int] = {}
        # current measurement: (key, kind, order, fraction tensor) per hooked call
        self._current: list[tuple[str, str, int, torch.Tensor]] = []
        self._pending: list[tuple[tuple[int, int, int], list[tuple[str, str, torch.Tensor]]]] = []
        self._history: dict[str, list[float]] = {}
        self._measurements = 0
        self._reported: set[str] = set()
        self._worst: dict[str, float] = {}
        self._output_range = OutputRangeWatch()

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._reset()
        if not self.active_checks or not trainer.is_global_zero:
            return
        try:
            for name, module in hookable_modules(pl_module):
                kind = A.activation_kind(module)
                if kind is not None:
                    self._targets.append((name, module, kind))
                elif name and next(module.parameters(recurse=False), None) is not None:
                    self._layers.append(module)
            if not self._targets:
                inside = any(A.activation_kind(m) for _, m in pl_module.named_modules())
                self.skip(trainer, "dead-activations", "the activation modules run inside torch.compile'd modules, "
                          "whose hooks a compiled graph ignores" if inside else
                          "no activation modules (nn.ReLU, nn.Tanh, ...) in the model")
                return
            self._limits = {"tanh_limit": self.threshold("dead-activations", "tanh_limit"),
                            "sigmoid_margin": self.threshold("dead-activations", "sigmoid_margin")}
            every = self.every_n_steps or trainer_chart_every(trainer) or _FALLBACK_EVERY
            self._every = every
            self._active = True
            tensorboard.add_layout_chart(trainer, "sanity: activations", "dead units per layer",
                                         tensorboard.tag("dead_fraction", ".*"))
            tensorboard.add_layout_chart(trainer, "sanity: activations", "saturated outputs per layer",
                                         tensorboard.tag("saturated_fraction", ".*"))
        except Exception as err:  # a check must never lose the user's run
            self._fail(trainer, err)

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if not self._active:
            return
        if self._batches == 0 or (self._batches + 1) % self._every == 0:
            try:
                self._arm()
            except Exception as err:
                self._fail(trainer, err)

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int) -> None:
        measured = self._measuring
        if not measured:  # most steps: nothing was armed
            if self._active:
                self._batches += 1
            return
        self._disarm()
        if not self._active:
            return
        try:
            if measured:
                self._output_range.step_end(self.collector(trainer).facts, self._last_layer_order, batch)
                self._store(trainer, batch_idx)
                if self._batches > 0:  # the first batch is read with the next measurement: no extra transfer
                    self._read(trainer)
        except Exception as err:
            self._fail(trainer, err)
        self._batches += 1

    @override
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self._disarm()

    @override
    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self._disarm()

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._disarm()
        if not self._active:
            return
        self._read(trainer)
        self._output_range.judge(self, trainer)
        if self._worst:
            name, worst = max(self._worst.items(), key=lambda item: item[1])
            self.detail(trainer, "dead-activations",
                        f"{len(self._history)} activation calls, {self._measurements} measurements; worst {name}: {worst:.0%}")

    # ------------------------------------------------------------------ measuring

    def _arm(self) -> None:
        self._measuring = True
        self._order = 0
        self._last_layer_order = -1
        self._calls = {}
        self._current = []
        for name, module, kind in self._targets:
            self._handles.append(module.register_forward_hook(timed(self._activation_hook(name, kind))))
        for module in self._layers:
            self._handles.append(module.register_forward_hook(timed(self._layer_hook)))

    def _disarm(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._measuring = False

    def _layer_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        self._last_layer_order = self._order
        self._order += 1

    def _activation_hook(self, name: str, kind: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            # Reads the output only: no change to it, to the graph, or to any RNG.
            call = self._calls.get(name, 0)
            self._calls[name] = call + 1
            order, self._order = self._order, self._order + 1
            key = name if call == 0 else f"{name}#{call + 1}"
            self._output_range.seen(key, module, order, output)
            if not isinstance(output, torch.Tensor) or not output.is_floating_point():
                return
            if kind == "relu" and A.values_per_unit(output) < A.MIN_VALUES_PER_UNIT:
                return
            with torch.no_grad():
                fraction = (A.dead_unit_fraction(output) if kind == "relu"
                            else A.saturated_fraction(output, kind, **self._limits))
            self._current.append((key, kind, order, fraction))

        return hook

    def _store(self, trainer: "pl.Trainer", batch_idx: int) -> None:
        # A tanh/sigmoid after which no parametered layer ran is the model's output: not judged for saturation.
        kept = [
            (key, kind, fraction) for key, kind, order, fraction in self._current
            if kind == "relu" or order < self._last_layer_order
        ]
        self._current = []
        if kept:
            self._pending.append(((trainer.global_step, trainer.current_epoch, batch_idx), kept))

    def _read(self, trainer: "pl.Trainer") -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        values = torch.stack([f.float().to(pending[0][1][0][2].device) for _, kept in pending for _, _, f in kept]).tolist()
        i = 0
        for (step, epoch, batch_idx), kept in pending:
            metrics: dict[str, float] = {}
            self._measurements += 1
            for key, kind, _ in kept:
                value = values[i]
                i += 1
                self._history.setdefault(key, []).append(value)
                self._worst[key] = max(self._worst.get(key, 0.0), value)
                quantity = "dead_fraction" if kind == "relu" else "saturated_fraction"
                metrics[tensorboard.tag(quantity, key)] = value
                self._judge(trainer, key, kind, (step, epoch, batch_idx))
            tensorboard.log_scalars(trainer, metrics, step=step)

    def _judge(self, trainer: "pl.Trainer", key: str, kind: str, meta: tuple[int, int, int]) -> None:
        history = self._history[key]
        threshold = self.threshold("dead-activations", "dead_fraction" if kind == "relu" else "saturated_fraction")
        if key in self._reported or not A.sustained(history, threshold):
            return
        self._reported.add(key)
        where = key.split("#")[0]
        step, epoch, batch_idx = meta
        if kind == "relu":
            message = (f"{history[-1]:.0%} of the units of `{key}` were never positive over a whole batch on "
                       f"{len(history)} measurement(s) in a row: they pass no gradient and do not learn.")
            advice = ("Check the bias and weight initialisation before this layer (a large negative bias kills "
                      "ReLUs), lower the learning rate (a large update can kill units for good), normalise the "
                      "inputs or add BatchNorm before the activation, or use LeakyReLU/GELU.")
        else:
            limit = (f"|tanh| > {self._limits['tanh_limit']:g}" if kind == "tanh" else
                     f"sigmoid < {self._limits['sigmoid_margin']:g} or > {1 - self._limits['sigmoid_margin']:g}")
            message = (f"{history[-1]:.0%} of the outputs of `{key}` are saturated ({limit}) on the last 2 "
                       f"measurements: its gradient is nearly zero there.")
            advice = ("Normalise the inputs (zero mean, unit variance), scale down the initialisation of the "
                      "layer before it, add a normalisation layer before the activation, or use ReLU/GELU.")
        finding = self.report(
            trainer, "dead-activations", Severity.WARNING, message, advice, where=where,
            data={"kind": "dead" if kind == "relu" else "saturated", "activation": kind,
                  "fraction": history[-1], "history": [round(v, 4) for v in history[-4:]], "call": key,
                  "threshold": threshold},
            batch_idx=batch_idx, global_step=step, key=f"{key}:{kind}",
        )
        if finding.global_step == step:
            finding.epoch = epoch

    def _fail(self, trainer: "pl.Trainer", err: BaseException) -> None:
        self._active = False
        self._disarm()
        log.warning("lightning_sanity: ActivationMonitor stopped after an internal error: %r", err)
        self.skip(trainer, "dead-activations", f"internal error: {err!r}")

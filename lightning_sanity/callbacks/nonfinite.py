r"""
Non-finite sentinel
^^^^^^^^^^^^^^^^^^^

Catch the first NaN or Inf in the loss, the gradients or the weights, say where and when, save the step for
replay, and stop (or skip, or warn).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

import lightning.pytorch as pl
from lightning.pytorch.strategies import Strategy
from torch import Tensor
from typing_extensions import override

from lightning_sanity._compat import gather_objects
from lightning_sanity.callbacks.step import (
    capture_for,
    capture_step,
    forget_step_reads,
    resolve_step_reads,
    save_step_bundle,
    shared_grad_norms,
)
from lightning_sanity.callbacks._amp_overflows import AmpOverflows
from lightning_sanity.callbacks._val_nonfinite import _ValNonFinite
from lightning_sanity.callbacks.base import SanityCallback
from lightning_sanity.checks.nonfinite import nonfinite_finding
from lightning_sanity.checks.numerics import PLAIN_DTYPES, count_nonfinite, finite_flag, flag_parts, grad_norm_parts
from lightning_sanity.checks.numerics import is_finite, owner_module
from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)

CHECK = "non-finite"
ACTIONS = ("stop", "skip", "warn")

class NonFiniteStop(RuntimeError):
    """Raised when the Trainer kept training after the sentinel asked it to stop on a non-finite step."""


class NonFiniteSentinel(AmpOverflows, _ValNonFinite, SanityCallback):
    r"""Watch the loss, the gradients and the weights for NaN or Inf, at the cost of one host sync per step.

    Every training step folds two things into one fused reduction (``torch._foreach_norm`` over all gradients,
    taken from the norm monitor when it runs) and reads it back, with the loss, in the step's one host sync: the
    loss of the step (and of every micro-batch under gradient accumulation) and the gradients as the optimizer is
    about to use them (unscaled under AMP, before clipping). The weights are not read every step: the forward pass
    has just used them, so weights that an update broke show in the next step's loss. The weights are read once
    more after the last update of training. Only when the flag is up does it look tensor by tensor to find what
    went non-finite first: weights (broken by the previous update), else the loss, else the gradient of the module
    nearest the output in backward order.

    On detection it writes a replay bundle to ``<log_dir>/sanity/replay/step_<global_step>.pt`` (see
    :mod:`lightning_sanity.replays`) and reports a ``non-finite`` finding with the epoch, batch, global step, seed,
    ``where`` (``"loss"``, the module, or the parameter) and the bundle path. Under DDP all ranks agree through
    ``reduce_boolean_decision``; the finding (reported by rank 0) names the rank whose loss or weights went
    non-finite, and that rank writes the bundle.

    With fp16 AMP (a ``GradScaler``), non-finite gradients with a finite loss are the scaler's business: it skips
    the step. They are counted in an ``info`` finding, unless the scale falls below 1 or the overflows go on for
    20 steps in a row.

    NaN/Inf in validation only (training finite) is an error too: :mod:`~lightning_sanity.callbacks._val_nonfinite`.

    It writes no TensorBoard tags.

    Args:
        on_nonfinite: what to do at the first non-finite step.
            ``"stop"`` (default): save the bundle, report an error and stop training (``trainer.should_stop`` on
            every rank). The step's gradients are dropped (``optimizer.zero_grad(set_to_none=True)``), so the bad
            update is not applied and the model keeps its last finite weights. If the Trainer refuses to stop (``min_epochs``/``min_steps`` not reached), the next batch
            raises :class:`NonFiniteStop` rather than train on broken weights.
            ``"skip"``: drop that step's gradients (``optimizer.zero_grad(set_to_none=True)``, so the optimizer
            leaves the weights alone) and go on, counting skipped steps in a warning. Non-finite weights cannot be
            skipped: training then stops.
            ``"warn"``: report an error and go on.

    Raises:
        ValueError: ``on_nonfinite`` is not one of ``"stop"``, ``"skip"``, ``"warn"``.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.nonfinite import NonFiniteSentinel
        >>> trainer = Trainer(callbacks=[NonFiniteSentinel(on_nonfinite="skip")], logger=False)
    """

    checks = (CHECK,)

    def __init__(self, on_nonfinite: str = "stop") -> None:
        if on_nonfinite not in ACTIONS:
            raise ValueError(f"`on_nonfinite` got {on_nonfinite!r}; allowed values are: {', '.join(map(repr, ACTIONS))}.")
        self.on_nonfinite = on_nonfinite
        self._log_dir: Optional[str] = None
        self._reset()

    def _reset(self) -> None:
        self._losses: list[Tensor] = []
        self._stepped = False
        self._steps_checked = 0
        self._detections = 0
        self._skipped = 0
        self._amp_overflows = 0
        self._amp_consecutive = 0
        self._stop_requested = False
        self._broken = False
        self._names: dict[int, str] = {}
        self._order: dict[int, int] = {}
        self._optimizer_params: dict[int, tuple[int, list[Tensor]]] = {}
        self._plain: set[int] = set()  # id() of the cached parameter lists all of PLAIN_DTYPES (held: ids stay unique)
        self._val_reset()
        self._reduce = True  # False where the strategy's reduce_boolean_decision only returns its argument

    # ------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage != "fit":
            return
        # `trainer.log_dir` is a collective under DDP: read it here, where every rank is.
        self._log_dir = trainer.log_dir
        self._reset()
        self._reduce = type(trainer.strategy).reduce_boolean_decision is not Strategy.reduce_boolean_decision
        capture_for(trainer).reset()
        forget_step_reads(trainer)

    @override
    def on_train_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # Names by identity, taken after the strategy has moved and wrapped the model.
        named = list(pl_module.named_parameters())
        self._names = {id(p): n for n, p in named}
        self._order = {id(p): i for i, (_, p) in enumerate(named)}

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if self._stop_requested:
            raise NonFiniteStop(
                "lightning_sanity stopped training after a non-finite step, but the Trainer went on (min_epochs or "
                "min_steps not reached). See the sanity summary; pass `on_nonfinite='skip'` or 'warn' to go on anyway."
            )
        try:
            capture_step(trainer, pl_module, batch, batch_idx, holder=self)
        except Exception as err:  # a failure here must not lose the run
            log.warning("lightning_sanity: non-finite could not capture the step: %r", err)
        self._losses = []
        self._stepped = False

    @override
    def on_before_backward(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: Tensor) -> None:
        # A reference on the device, read in this step's one sync.
        if isinstance(loss, Tensor):
            self._losses.append(loss.detach())

    @override
    def on_before_optimizer_step(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", optimizer: Any) -> None:
        self._stepped = True
        params: list[Tensor] = []
        try:
            params = self._params_of(optimizer, pl_module)
        except Exception as err:
            self._failed(trainer, err)
        losses, self._losses = self._losses, []
        # Only the weights the optimizer moves are diagnosed: frozen ones cannot change, and a frozen parameter
        # may hold -inf on purpose (a mask); if it mattered, the loss would show it.
        self._check(trainer, pl_module, params, params, losses, optimizer)

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any, batch_idx: int) -> None:
        try:
            self._batch_end(trainer, pl_module, outputs)
        finally:
            capture_for(trainer).done(self)

    def _batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any) -> None:
        if self._stepped:
            return
        # No optimizer step in this batch (accumulation, manual optimization, a skipped step): the loss still counts.
        losses, self._losses = self._losses, []
        if not losses:
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if isinstance(loss, Tensor):
                losses = [loss.detach()]
        self._check(trainer, pl_module, [], [], losses, None)

    @override
    def on_train_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        # The last update's result is never folded into a later step: look at the weights once more.
        try:
            if self._stop_requested or self._broken:
                return
            moved = [p for opt in trainer.optimizers for g in opt.param_groups for p in g["params"]]
            flag = finite_flag(moved)
            if flag is not None and not bool(flag) and trainer.is_global_zero:
                bad = self._first_bad_weight(pl_module, moved)
                if bad is not None:
                    counts = count_nonfinite(dict(pl_module.named_parameters())[bad])
                    self.report(
                        trainer, CHECK, Severity.ERROR,
                        f"The weights `{bad}` hold {counts['nan']} NaN and {counts['inf']} Inf values of "
                        f"{counts['numel']} after the last update of training.",
                        "The optimizer produced them from finite gradients: check the learning rate, the optimizer's "
                        "eps (Adam with eps=0 divides 0 by 0) and any code that edits weights after the step.",
                        where=bad, data={"kind": "weights", "nan": counts["nan"], "inf": counts["inf"]},
                    )
        except Exception as err:
            self._failed(trainer, err)
        finally:
            capture_for(trainer).release()

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        parts = [f"{self._steps_checked} steps checked"]
        if self._skipped:
            parts.append(f"{self._skipped} skipped")
        if self._amp_overflows:
            parts.append(f"{self._amp_overflows} AMP overflow steps")
        if self._val_detail():
            parts.append(self._val_detail())
        self.detail(trainer, CHECK, ", ".join(parts))

    # ------------------------------------------------------------------ the check

    def _params_of(self, optimizer: Any, pl_module: "pl.LightningModule") -> list[Tensor]:
        groups = getattr(optimizer, "param_groups", None)
        if not groups:
            return [p for p in pl_module.parameters() if p.requires_grad]
        # One group (the common case) without a generator's frame: this runs on every step.
        count = len(groups[0]["params"]) if len(groups) == 1 else sum(len(g["params"]) for g in groups)
        cached = self._optimizer_params.get(id(optimizer))
        if cached is None or cached[0] != count:
            params = [p for g in groups for p in g["params"]]
            cached = self._optimizer_params[id(optimizer)] = (count, params)
            if all(p.dtype in PLAIN_DTYPES for p in params):
                self._plain.add(id(params))
        return cached[1]

    def _failed(self, trainer: "pl.Trainer", err: BaseException) -> None:
        log.warning("lightning_sanity: the non-finite check failed and is switched off: %r", err)
        self.skip(trainer, CHECK, f"internal error: {err!r}")
        self._broken = True

    def _check(
        self,
        trainer: "pl.Trainer",
        pl_module: "pl.LightningModule",
        params: list[Tensor],
        weights: list[Tensor],
        losses: list[Tensor],
        optimizer: Any,
    ) -> None:
        """``params``: whose gradients to look at; ``weights``: whose values to diagnose; ``losses``: the step's."""
        bad_local = False
        if not self._broken:
            try:
                # The norms monitor may have read these gradients already in this step.
                shared = shared_grad_norms(trainer, optimizer, params) if optimizer is not None else None
                plain = id(params) in self._plain
                parts = [shared] if shared is not None else grad_norm_parts(params, plain) if params else []
                # The one host sync of the step, shared with the other checks' device-side figures.
                values = resolve_step_reads(trainer, parts + flag_parts((), *losses))
                bad_local = not all(map(math.isfinite, values))
                self._steps_checked += 1
            except Exception as err:
                self._failed(trainer, err)
        # Every rank must take part, whatever happened locally.
        bad = bool(trainer.strategy.reduce_boolean_decision(bad_local, all=False)) if self._reduce else bad_local
        if not bad:
            self._amp_consecutive = 0
            return
        try:
            self._handle(trainer, pl_module, params, weights, losses, optimizer)
        except Exception as err:
            self._failed(trainer, err)
            if self.on_nonfinite == "stop":
                trainer.should_stop = True

    def _first_bad_weight(self, pl_module: "pl.LightningModule", among: Optional[list[Tensor]] = None) -> Optional[str]:
        params = among if among is not None else list(pl_module.parameters())
        for p in sorted(params, key=lambda t: self._order.get(id(t), 0)):
            if not is_finite(p):
                return self._names.get(id(p)) or next((n for n, q in pl_module.named_parameters() if q is p), "?")
        return None

    def _diagnose(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", params: list[Tensor], weights: list[Tensor],
        losses: list[Tensor],
    ) -> dict[str, Any]:
        """What went non-finite first on this rank (slow path, runs only after detection)."""
        view: dict[str, Any] = {"rank": int(trainer.global_rank), "kind": None, "where": None}
        finite_losses = [float(l.float().sum()) for l in losses]
        view["loss"] = next((v for v in finite_losses if not math.isfinite(v)), finite_losses[-1] if finite_losses else None)
        bad_weight = self._first_bad_weight(pl_module, weights) if weights else None
        if bad_weight is not None:
            counts = count_nonfinite(dict(pl_module.named_parameters())[bad_weight])
            view.update(kind="weights", where=bad_weight, parameter=bad_weight, **counts)
            return view
        if any(not math.isfinite(v) for v in finite_losses):
            view.update(kind="loss", where="loss")
            return view
        # Backward runs from the output to the input: the bad gradient nearest the output came first.
        bad = sorted((p for p in params if p.grad is not None and not is_finite(p.grad)),
                     key=lambda p: self._order.get(id(p), 0), reverse=True)
        if bad:
            names = [self._names.get(id(p), "?") for p in bad]
            counts = count_nonfinite(bad[0].grad)
            view.update(kind="gradient", where=owner_module(names[0]) or names[0], parameter=names[0],
                        parameters=names[:10], **counts)
        return view

    def _handle(
        self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", params: list[Tensor], weights: list[Tensor],
        losses: list[Tensor], optimizer: Any,
    ) -> None:
        view = self._diagnose(trainer, pl_module, params, weights, losses)
        views = gather_objects(view) if trainer.world_size > 1 else [view]
        origin = next((v for v in views if v["kind"] in ("weights", "loss")), None)
        origin = origin or next((v for v in views if v["kind"] == "gradient"), None)
        if origin is None:
            # Every tensor is finite: the flag's sum of magnitudes overflowed float32 (values near 1e38). Not ours.
            self._amp_consecutive = 0
            return
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and all(v["kind"] in ("gradient", None) for v in views):
            self._amp_overflow(trainer, scaler, origin)
            return
        self._detections += 1
        action = self.on_nonfinite
        if action == "skip" and origin["kind"] == "weights":
            action = "stop"  # dropping gradients cannot repair weights that are already NaN
        replay = None
        if self._detections == 1 or action != "skip":
            if trainer.global_rank == origin["rank"]:
                replay = save_step_bundle(trainer, pl_module, self._log_dir, check=CHECK, where=origin["where"],
                                          kind=origin["kind"], extra={"views": views})
            else:
                replay = capture_for(trainer).written.get(trainer.global_step) or _relpath(trainer)
        if action == "stop":
            trainer.should_stop = True
            self._stop_requested = True
        elif action == "skip":
            self._skipped += 1
        if action in ("stop", "skip"):
            for opt in [optimizer] if optimizer is not None else trainer.optimizers:
                # The only place the suite touches gradients, and only once the step is already broken: without
                # gradients the optimizer leaves every weight as it was, so a stopped run keeps finite weights.
                opt.zero_grad(set_to_none=True)
        if trainer.is_global_zero:
            self._report(trainer, origin, views, action, replay)

    def _report(self, trainer: "pl.Trainer", origin: dict[str, Any], views: list[dict[str, Any]], action: str,
                replay: Optional[str]) -> None:
        capture = capture_for(trainer)
        severity, message, advice, data = nonfinite_finding(
            origin, views, action, replay, epoch=capture.epoch, batch_idx=capture.batch_idx,
            step=capture.global_step, world=trainer.world_size, precision=str(trainer.precision),
            accumulate_grad_batches=trainer.accumulate_grad_batches,
        )
        self.report(trainer, CHECK, severity, message, advice, where=origin["where"], data=data,
                    batch_idx=capture.batch_idx, global_step=capture.global_step, replay=replay,
                    key=f"{action}:{origin['kind']}")

def _relpath(trainer: "pl.Trainer") -> str:
    from lightning_sanity.replays.bundle import bundle_relpath

    return bundle_relpath(capture_for(trainer).global_step)

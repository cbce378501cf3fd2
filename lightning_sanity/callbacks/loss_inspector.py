r"""
Loss inspector
^^^^^^^^^^^^^^

The ``initial-loss`` and ``loss-input`` checks: watch the loss call(s) of the first training step, before any
update, and compare the loss with what the task predicts.

This module holds the watch (hooks, the ``TorchFunctionMode`` on the first step, one :class:`_Observation` per
recognised call); each check's findings are in its own glue module, :mod:`~lightning_sanity.callbacks.loss_input`
and :mod:`~lightning_sanity.callbacks.initial_loss`, and the figures handed to other checks in ``_loss_facts``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.types import STEP_OUTPUT
from typing_extensions import override

from lightning_sanity.batch import split_batch
from lightning_sanity.callbacks._loss_facts import _LossFacts
from lightning_sanity.callbacks import _class_axis as CA
from lightning_sanity.callbacks import _ctc_input as CTC
from lightning_sanity.callbacks import _masked_loss as ML
from lightning_sanity.callbacks import _poisson_input as PI
from lightning_sanity.callbacks import _sign_targets as ST
from lightning_sanity.callbacks._lineage import Lineage
from lightning_sanity.callbacks._loss_observation import _NAMES, _FirstStep, _Observation
from lightning_sanity.callbacks._step_watch import StepWatch, weight_owners
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.callbacks.initial_loss import _InitialLossGlue
from lightning_sanity.callbacks.loss_input import _LossInputGlue
from lightning_sanity.checks import initial_loss as IL
from lightning_sanity.checks import loss_expectations as LE
from lightning_sanity.checks import losses as L
from lightning_sanity.checks.in_batch_targets import constant_in_batch_target
from lightning_sanity.checks.loss_graph import is_log_probability, is_scaled_cosine, loss_has_own_terms
from lightning_sanity.checks.outputs import loss_kind_is
from lightning_sanity.checks.targets import shifted_batch_target

log = logging.getLogger(__name__)


class LossInspector(_InitialLossGlue, _LossInputGlue, _LossFacts, SanityCallback):
    r"""Check the loss of the first training step against what the task predicts, and what the loss is fed.

    During the first training step only, a ``torch.overrides.TorchFunctionMode`` watches the calls to the common
    losses (``cross_entropy``, ``nll_loss``, ``binary_cross_entropy`` with and without logits, ``mse_loss``,
    ``l1_loss``, ``smooth_l1_loss``, ``huber_loss``; the ``nn`` loss modules call these). It is removed at the
    first backward (or at the end of the batch, or at a crash), so later steps cost nothing.

    - ``loss-input``: an element-wise op of a hand-written loss that pairs every prediction with every target of
      the batch (a (B, 1, 1) target against (B, 3) predictions: ``lightning_sanity.checks.pair_broadcast``);
      probabilities where logits are expected (a softmax before ``cross_entropy``, a sigmoid before
      ``binary_cross_entropy_with_logits``), raw scores given to ``nll_loss``, prediction and target shapes that
      broadcast silently in a regression loss, class indices out of range, binary targets outside [0, 1]. These are
      recorded before the call runs, so they reach the summary when the call then raises.
    - ``initial-loss``: the loss per element against the loss of a uniform (or zero) prediction and the best
      constant prediction (label prior, target mean): an overconfident last layer or an output bias far from the
      targets' mean fires, with the bias that fixes it. A training loss of exactly 0, or one that does not depend on
      any trainable parameter, fires too.

    Figures handed to other checks through the collector's ``facts``: ``initial_loss``, ``baseline_loss`` (on the
    training loss's scale, when the training loss is the recognised call), ``uniform_loss``, ``loss_kind``,
    ``loss_target_is_batch_target`` (whether that call's target is the batch's target, or something the step made,
    such as a GAN's ``torch.ones_like(...)``: the label checks trust the loss kind only when it is),
    ``loss_target_from_model`` (``"trained"`` / ``"frozen"`` when that target was computed from the model's
    parameters, trained ones or only frozen ones: a TD target from a target network, a teacher's output; else None),
    ``num_classes``, ``ignore_index``, ``label_prior``, ``init_matches_prior``, ``output_module``,
    ``loss_elements`` (the terms one batch's loss averages) and ``pos_weight`` (loss-trend's effective batch size),
    ``in_batch_constant_target`` (a constant target the step made for square, in-batch logits; see
    :mod:`lightning_sanity.checks.in_batch_targets`).

    Writes no TensorBoard tags.

    Thresholds (``thresholds={"initial-loss": {...}}`` or :meth:`set_thresholds`): ``classification_factor`` and
    ``classification_margin`` (an overconfident start: the loss above both this many times and this many nats over
    the uniform prediction's loss), ``mse_factor`` and ``linear_factor`` (an offset start: MSE, or L1 / Huber, above
    this many times the best constant prediction's loss), ``expected_factor`` (with ``expected_loss``: how many
    times above or below it). ``loss-input`` has none: its symptoms are exact.

    Args:
        expected_loss: the loss you expect before any update, for a loss the inspector cannot recognise (or to
            override its expectation); the check fires when the first loss is more than ``expected_factor``
            (default 2) times above or below it. ``None`` (default): work it out from the recognised loss call.
        get_input: ``batch -> input``, when the batch format is not recognised (see
            :func:`lightning_sanity.batch.split_batch`).
        get_target: ``batch -> target tensor``, likewise; used to tell whether a loss call compares with the
            batch's target.

    Raises:
        ValueError: ``expected_loss`` is not a positive finite number, or ``get_input`` / ``get_target`` is not
            callable.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.loss_inspector import LossInspector
        >>> trainer = Trainer(callbacks=[LossInspector()], logger=False)
        >>> LossInspector(expected_loss=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: `expected_loss` must be a positive finite number or None, got -1.0.
    """

    checks = ("initial-loss", "loss-input")
    threshold_specs = {
        "initial-loss": {
            "classification_factor": Threshold(
                IL.CLASSIFICATION_FACTOR, "cross-entropy at init fires above this many times the uniform prediction's "
                "loss (ln C) ...", minimum=1.0),
            "classification_margin": Threshold(
                IL.CLASSIFICATION_MARGIN, "... and at least this many nats above it"),
            "mse_factor": Threshold(
                IL.MSE_FACTOR, "MSE at init fires above this many times the best constant prediction's loss",
                minimum=1.0),
            "linear_factor": Threshold(
                IL.LINEAR_FACTOR, "L1 / Huber at init fires above this many times the best constant prediction's loss",
                minimum=1.0),
            "expected_factor": Threshold(
                IL.EXPECTED_FACTOR, "with `expected_loss`: fires when the first loss is more than this many times "
                "above or below it", minimum=1.0),
        },
    }

    def __init__(
        self,
        expected_loss: Optional[float] = None,
        get_input: Optional[Callable[[Any], Any]] = None,
        get_target: Optional[Callable[[Any], Any]] = None,
    ) -> None:
        for arg, fn in (("get_input", get_input), ("get_target", get_target)):
            if fn is not None and not callable(fn):
                raise ValueError(f"`{arg}` must be a callable `batch -> tensor` or None, got {fn!r}.")
        self.get_input, self.get_target = get_input, get_target
        if expected_loss is not None:
            if isinstance(expected_loss, bool) or not isinstance(expected_loss, (int, float)) or not (
                math.isfinite(expected_loss) and expected_loss > 0
            ):
                raise ValueError(f"`expected_loss` must be a positive finite number or None, got {expected_loss!r}.")
            expected_loss = float(expected_loss)
        self.expected_loss = expected_loss
        self._reset()

    def _reset(self) -> None:
        self.revive()
        self._watch: Optional[StepWatch] = None
        self._lineage: Optional[Lineage] = None
        self._origins: Optional[CA.ReshapeOrigins] = None  # what each reshaped tensor was reshaped from
        self._step = _FirstStep()
        self._poisson: Optional[PI.PoissonWatch] = None  # a Poisson log-rate followed over the first epoch
        self._poisson_seen = False
        self._ctc_seen = False  # a ctc_loss call in the first step: loss-input judged it, no baseline is known
        self._sign_seen = False  # a sign-target loss (cosine_embedding_loss, ...) in the first step: loss-input judged it

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._stop()
        self._reset()

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if self._step.stage != "waiting":
            if self._poisson is not None:
                try:
                    PI.add_batch(self._poisson, split_batch(batch, self.get_input, self.get_target)[1])
                except Exception:  # an unreadable batch: the tally keeps what it has
                    pass
            elif self._step.stage == "done":  # the first step is judged: nothing left to do per batch
                self.retire("on_train_batch_start", "on_before_backward", "on_train_batch_end")
            return
        if trainer.global_step > 0:
            self._step.stage = "done"
            self._step.skip_reason = "training resumed at step > 0, so the loss at init was not seen"
            return
        self._step.stage = "watching"
        self._step.trainer = trainer
        try:
            self._step.batch_input, self._step.batch_target = split_batch(batch, self.get_input, self.get_target)
        except Exception:  # an unreadable batch only means no call is known to use the batch's target
            self._step.batch_input = self._step.batch_target = None
        try:
            self._watch = StepWatch(before=self._before_call, after=self._after_call, weights=weight_owners(pl_module))
            self._lineage = Lineage({id(p) for p in pl_module.parameters()}, self._step.batch_target,
                                    {id(p) for p in pl_module.parameters() if p.requires_grad})
            self._origins = CA.ReshapeOrigins()
            # Views and casts of the batch's target carry this tag to the loss call (`y.float().unsqueeze(1)`).
            self._watch.tags.set(self._step.batch_target, {"batch_target": True})
            self._watch.start()
        except Exception as err:  # nothing may lose the user's run
            self._step.stage = "done"
            self._step.skip_reason = f"could not watch the first step: {err!r}"

    @override
    def on_before_backward(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: torch.Tensor) -> None:
        if self._step.stage != "watching":
            return
        self._stop()
        self._step.stage = "done"
        nodes, self._step.loss_nodes = self._step.loss_nodes, []
        try:  # for loss-trend: a log-probability minimised as it is (the minus sign of an NLL forgotten)
            self.collector(trainer).facts["loss_is_log_probability"] = is_log_probability(loss)
        except Exception:  # a bonus: never lose the initial-loss judgement over it
            log.debug("loss graph walk failed", exc_info=True)
        if nodes:
            # loss-trend's "cannot be negative" holds only for a loss made of the recognised calls alone.
            try:
                own = loss_has_own_terms(loss, nodes)
                signed = any(not loss_kind_is(L.KIND_FAMILY[o.call.kind], "nonnegative")
                             for o in self._step.observations)
                if own is not None:
                    self.collector(trainer).facts["loss_can_go_negative"] = own or signed
            except Exception:  # a bonus: never lose the initial-loss judgement over it
                log.debug("loss graph walk failed", exc_info=True)
        try:
            self._judge(trainer, pl_module, self._training_loss(trainer, pl_module, loss))
        except Exception as err:
            log.warning("lightning_sanity: the initial-loss check failed: %r", err)
            self._step.skip_reason = f"internal error: {err!r}"

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: STEP_OUTPUT,
                           batch: Any, batch_idx: int) -> None:
        if self._step.stage != "watching":
            return
        # No backward in the first step (manual optimization that skipped it): judge the loss calls alone.
        self._stop()
        self._step.stage = "done"
        self._step.loss_nodes = []  # no graph to walk: the nodes would only keep it alive
        try:
            self._judge(trainer, pl_module, None)
        except Exception as err:
            log.warning("lightning_sanity: the initial-loss check failed: %r", err)
            self._step.skip_reason = f"internal error: {err!r}"

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._judge_poisson(trainer)

    def _judge_poisson(self, trainer: "pl.Trainer") -> None:
        watch, self._poisson = self._poisson, None
        if watch is not None:
            try:
                PI.judge(self, trainer, watch)
            except Exception as err:
                log.warning("lightning_sanity: the Poisson loss-input check failed: %r", err)

    @override
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self._stop()
        if self._step.stage == "watching":
            self._step.stage = "done"
            self._step.skip_reason = "the first training step raised before its loss reached backward"
        self._step.loss_nodes = []

    @override
    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self._stop()

    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._stop()
        self._judge_poisson(trainer)  # a run that stopped inside its first epoch
        if self._step.stage == "waiting":
            self._step.skip_reason = "no training step ran"
        if self._step.skip_reason:
            self.skip(trainer, "initial-loss", self._step.skip_reason)
            if (not self._step.observations and not self._step.pending and not self._poisson_seen and not self._ctc_seen
                    and not self._sign_seen and not self._step.pairwise):
                self.skip(trainer, "loss-input", self._step.skip_reason)

    def _stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()
        self._lineage = self._origins = None

    # ------------------------------------------------------------------ inside the first step

    def _before_call(self, func: Any, args: tuple, kwargs: dict) -> None:
        if func is F.poisson_nll_loss:
            if not self._poisson_seen and self._watch is not None:
                self._poisson_seen = True
                self._poisson = PI.first_call(self, self._step.trainer, args, kwargs, self._watch.tags,
                                              self._is_batch_target)
        if func is F.ctc_loss:
            self._first_ctc(args, kwargs)
        if ST.sign_target_loss(func) is not None:
            self._first_sign_target(func, args, kwargs)
        if L.loss_kind(func) is None:
            return
        call = L.bind_loss_call(func, args, kwargs)
        if call is None:
            return
        tag = self._watch.tags.get(call.input) if self._watch is not None else None
        obs = _Observation(call, (tag or {}).get("module"), bool(call.input.requires_grad), (tag or {}).get("activation"),
                           target_is_batch=bool(((self._watch.tags.get(call.target) if self._watch is not None else None)
                                                  or {}).get("batch_target"))
                           or L.same_target(call.target, self._step.batch_target)
                           or shifted_batch_target(call.target, self._step.batch_target, call.ignore_index))
        if not obs.target_is_batch and self._lineage is not None:
            obs.target_from_model = self._lineage.made_by_model(call.target)
        self._step.pending.append(obs)
        facts = self.collector(self._step.trainer).facts
        if obs.depends_on_model and ("loss_kind" not in facts
                                     or (obs.target_is_batch and not facts.get("loss_target_is_batch_target"))):
            # Handed on now, not after the step: the data checks need them even when this call raises. A later
            # call that compares with the batch's target describes the labels better than one that does not.
            self._hand_over_kind(facts, obs)
        if obs.depends_on_model and not obs.target_is_batch and call.kind in L.CLASSIFICATION:
            # A target the step made for in-batch logits (contrastive losses): label-distribution judges it.
            constant = constant_in_batch_target(call.input, call.target)
            if constant is not None:
                facts["in_batch_constant_target"] = {**constant, "module": obs.module}
        self._check_input(obs, tag or {})
        if self._origins is not None:
            if call.kind in L.CLASSIFICATION:
                CA.check(self, self._step.trainer, call, self._origins, _NAMES[call.kind], obs.module)
            CA.check_permuted(self, self._step.trainer, call, self._origins, _NAMES[call.kind], obs.module)
            if call.kind in L.CLASSIFICATION + L.REGRESSION + L.BINARY:
                CA.check_flatten_order(self, self._step.trainer, call, self._origins, _NAMES[call.kind], obs.module,
                                       call.kind in L.CLASSIFICATION)

    def _first_ctc(self, args: tuple, kwargs: dict) -> None:
        if self._ctc_seen or self._watch is None:
            return
        self._ctc_seen = True
        try:
            where = ((self._watch.tags.get(args[0]) if args else None) or {}).get("module")
            text = CTC.first_call(self, self._step.trainer, args, kwargs, where)
        except Exception as err:  # a bonus: never switch the loss watch off over it
            log.debug("lightning_sanity: ctc_loss input check failed: %r", err)
            return
        if text:
            self.detail(self._step.trainer, "loss-input", text)

    def _first_sign_target(self, func: Any, args: tuple, kwargs: dict) -> None:
        if self._watch is None:
            return
        self._sign_seen = True
        try:
            where = ((self._watch.tags.get(args[0]) if args else None) or {}).get("module")
            text = ST.first_call(self, self._step.trainer, func, args, kwargs, where)
        except Exception as err:  # a bonus: never switch the loss watch off over it
            log.debug("lightning_sanity: sign-target loss check failed: %r", err)
            return
        if text:
            self.detail(self._step.trainer, "loss-input", text)

    def _is_batch_target(self, target: Any) -> bool:
        tag = self._watch.tags.get(target) if self._watch is not None else None
        return bool((tag or {}).get("batch_target")) or L.same_target(target, self._step.batch_target)

    def _after_call(self, func: Any, args: tuple, kwargs: dict, result: Any) -> None:
        if self._origins is not None:
            self._origins.after(func, args, result)
        if self._lineage is not None:
            try:
                if self._lineage.after(func, args, kwargs, result):
                    self._report_pairwise(self._lineage.found)
            except Exception as err:  # a bonus: never switch the loss watch off over it
                log.debug("lightning_sanity: lineage watch failed: %r", err)
                self._lineage = None
        if self._watch is not None and self._step.observations:
            ML.after(self._watch.tags, func, args)  # a 0/1 mask applied to a per-element loss
        if not self._step.pending or L.loss_kind(func) is None or not isinstance(result, torch.Tensor):
            return
        obs = self._step.pending.pop()
        call = obs.call
        obs.margin_logits = self._lineage is not None and self._lineage.margin_logits(call.input)
        obs.cosine_logits = (call.kind in L.CLASSIFICATION or call.kind in L.BINARY) and is_scaled_cosine(call.input)
        if result.grad_fn is not None:
            self._step.loss_nodes.append(result.grad_fn)
        obs.reduced = float(result.detach().reshape(-1)[0]) if call.reduction != "none" and result.numel() else None
        obs.observed = LE.observed_loss(call, result)
        obs.expectation = LE.expected_losses(call)
        if call.kind in L.CLASSIFICATION or call.kind in L.BINARY:
            obs.mean_prediction = LE.mean_prediction(call)
        self._step.observations.append(obs)
        if self._watch is not None:
            ML.watch(self._watch.tags, obs, result)

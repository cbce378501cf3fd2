r"""
Loss inspector
^^^^^^^^^^^^^^

The ``initial-loss`` and ``loss-input`` checks: watch the loss call(s) of the first training step, before any
update, and compare the loss with what the task predicts.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Callable, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.types import STEP_OUTPUT
from typing_extensions import override

from lightning_sanity.callbacks._loss_targets import check_targets, initial_detail
from lightning_sanity.callbacks._step_watch import StepWatch, weight_owners
from lightning_sanity.batch import split_batch
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.checks import losses as L
from lightning_sanity.checks.targets import shifted_batch_target
from lightning_sanity.findings import Severity

log = logging.getLogger(__name__)

_RECOGNISED = ("cross_entropy, nll_loss, binary_cross_entropy(_with_logits), mse_loss, l1_loss, smooth_l1_loss, "
               "huber_loss, kl_div, gaussian_nll_loss (functional or nn.Module)")
_NAMES = {
    "cross_entropy": "cross_entropy", "nll": "nll_loss", "binary_cross_entropy": "binary_cross_entropy",
    "binary_cross_entropy_with_logits": "binary_cross_entropy_with_logits", "mse": "mse_loss", "l1": "l1_loss",
    "smooth_l1": "smooth_l1_loss", "huber": "huber_loss", "kl_div": "kl_div", "gaussian_nll": "gaussian_nll_loss",
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
    expectation: Optional[L.LossExpectation] = None
    mean_prediction: Optional[torch.Tensor] = None


class LossInspector(SanityCallback):
    r"""Check the loss of the first training step against what the task predicts, and what the loss is fed.

    During the first training step only, a ``torch.overrides.TorchFunctionMode`` watches the calls to the common
    losses (``cross_entropy``, ``nll_loss``, ``binary_cross_entropy`` with and without logits, ``mse_loss``,
    ``l1_loss``, ``smooth_l1_loss``, ``huber_loss``; the ``nn`` loss modules call these). It is removed at the
    first backward (or at the end of the batch, or at a crash), so later steps cost nothing.

    - ``loss-input``: probabilities where logits are expected (a softmax before ``cross_entropy``, a sigmoid before
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
    ``num_classes``, ``ignore_index``, ``label_prior``, ``init_matches_prior``, ``output_module``.

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
                L.CLASSIFICATION_FACTOR, "cross-entropy at init fires above this many times the uniform prediction's "
                "loss (ln C) ...", minimum=1.0),
            "classification_margin": Threshold(
                L.CLASSIFICATION_MARGIN, "... and at least this many nats above it"),
            "mse_factor": Threshold(
                L.MSE_FACTOR, "MSE at init fires above this many times the best constant prediction's loss",
                minimum=1.0),
            "linear_factor": Threshold(
                L.LINEAR_FACTOR, "L1 / Huber at init fires above this many times the best constant prediction's loss",
                minimum=1.0),
            "expected_factor": Threshold(
                L.EXPECTED_FACTOR, "with `expected_loss`: fires when the first loss is more than this many times "
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
        self._stage = "waiting"  # waiting -> watching -> done
        self._observations: list[_Observation] = []
        self._pending: list[_Observation] = []
        self._skip_reason: Optional[str] = None
        self._loss_requires_grad = True
        self._trainer: Optional["pl.Trainer"] = None
        self._batch_target: Any = None

    # ------------------------------------------------------------------ hooks

    @override
    def on_fit_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._stop()
        self._reset()

    @override
    def on_train_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, batch_idx: int) -> None:
        if self._stage != "waiting":
            if self._stage == "done":  # the first step is judged: nothing left to do per batch
                self.retire("on_train_batch_start", "on_before_backward", "on_train_batch_end")
            return
        if trainer.global_step > 0:
            self._stage = "done"
            self._skip_reason = "training resumed at step > 0, so the loss at init was not seen"
            return
        self._stage = "watching"
        self._trainer = trainer
        try:
            self._batch_target = split_batch(batch, self.get_input, self.get_target)[1]
        except Exception:  # an unreadable batch only means no call is known to use the batch's target
            self._batch_target = None
        try:
            self._watch = StepWatch(before=self._before_call, after=self._after_call, weights=weight_owners(pl_module))
            # Views and casts of the batch's target carry this tag to the loss call (`y.float().unsqueeze(1)`).
            self._watch.tags.set(self._batch_target, {"batch_target": True})
            self._watch.start()
        except Exception as err:  # nothing may lose the user's run
            self._stage = "done"
            self._skip_reason = f"could not watch the first step: {err!r}"

    @override
    def on_before_backward(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: torch.Tensor) -> None:
        if self._stage != "watching":
            return
        self._stop()
        self._stage = "done"
        try:
            self._judge(trainer, pl_module, self._training_loss(trainer, pl_module, loss))
        except Exception as err:
            log.warning("lightning_sanity: the initial-loss check failed: %r", err)
            self._skip_reason = f"internal error: {err!r}"

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: STEP_OUTPUT,
                           batch: Any, batch_idx: int) -> None:
        if self._stage != "watching":
            return
        # No backward in the first step (manual optimization that skipped it): judge the loss calls alone.
        self._stop()
        self._stage = "done"
        try:
            self._judge(trainer, pl_module, None)
        except Exception as err:
            log.warning("lightning_sanity: the initial-loss check failed: %r", err)
            self._skip_reason = f"internal error: {err!r}"

    @override
    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self._stop()
        if self._stage == "watching":
            self._stage = "done"
            self._skip_reason = "the first training step raised before its loss reached backward"

    @override
    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self._stop()

    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        self._stop()
        if self._stage == "waiting":
            self._skip_reason = "no training step ran"
        if self._skip_reason:
            self.skip(trainer, "initial-loss", self._skip_reason)
            if not self._observations and not self._pending:
                self.skip(trainer, "loss-input", self._skip_reason)

    def _stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()

    # ------------------------------------------------------------------ inside the first step

    def _before_call(self, func: Any, args: tuple, kwargs: dict) -> None:
        if L.loss_kind(func) is None:
            return
        call = L.bind_loss_call(func, args, kwargs)
        if call is None:
            return
        tag = self._watch.tags.get(call.input) if self._watch is not None else None
        obs = _Observation(call, (tag or {}).get("module"), bool(call.input.requires_grad), (tag or {}).get("activation"),
                           target_is_batch=bool(((self._watch.tags.get(call.target) if self._watch is not None else None)
                                                  or {}).get("batch_target"))
                           or L.same_target(call.target, self._batch_target)
                           or shifted_batch_target(call.target, self._batch_target, call.ignore_index))
        self._pending.append(obs)
        facts = self.collector(self._trainer).facts
        if obs.depends_on_model and ("loss_kind" not in facts
                                     or (obs.target_is_batch and not facts.get("loss_target_is_batch_target"))):
            # Handed on now, not after the step: the data checks need them even when this call raises. A later
            # call that compares with the batch's target describes the labels better than one that does not.
            self._hand_over_kind(facts, obs)
        self._check_input(obs, tag or {})

    def _after_call(self, func: Any, args: tuple, kwargs: dict, result: Any) -> None:
        if not self._pending or L.loss_kind(func) is None or not isinstance(result, torch.Tensor):
            return
        obs = self._pending.pop()
        call = obs.call
        obs.reduced = float(result.detach().reshape(-1)[0]) if call.reduction != "none" and result.numel() else None
        obs.observed = L.observed_loss(call, result)
        obs.expectation = L.expected_losses(call)
        if call.kind in L.CLASSIFICATION or call.kind in L.BINARY:
            obs.mean_prediction = L.mean_prediction(call)
        self._observations.append(obs)

    def _check_input(self, obs: _Observation, tag: dict[str, Any]) -> None:
        trainer = self._trainer
        call, where, name = obs.call, obs.module, _NAMES[obs.call.kind]
        kind = call.kind
        check_targets(self, trainer, call, name, where)
        if kind in L.CLASSIFICATION:
            classes = L.num_classes(call)
            if L.hard_targets(call):
                problem = L.class_index_problem(call.target, classes, call.ignore_index)
                if problem:
                    self.report(
                        trainer, "loss-input", Severity.ERROR,
                        f"{name} got class indices from {problem['min_label']} to {problem['max_label']} "
                        f"({problem['out_of_range']} out of range), but the prediction has {classes} classes "
                        f"(valid indices 0..{classes - 1}).",
                        f"Make the last layer as wide as the number of classes (at least {problem['max_label'] + 1} "
                        "outputs) or remap the labels to 0..C-1; ignored targets must equal `ignore_index`.",
                        where=where, data=problem)
                elif bool((call.target == call.ignore_index).all()):
                    self.report(
                        trainer, "loss-input", Severity.WARNING,
                        f"Every target of {name} equals ignore_index ({call.ignore_index}), so the loss is NaN "
                        "(mean over no element) and nothing is learned from this batch.",
                        "Check the masking of the targets: at least some targets must be real class indices.",
                        where=where, data={"ignore_index": call.ignore_index})
            rows = L.class_rows(call.input)
            if L.looks_like_probabilities(rows):
                detail = "a softmax output" if tag.get("activation") == "softmax" else "rows in [0, 1] that sum to 1"
                if kind == "cross_entropy":
                    msg = (f"cross_entropy was given probabilities ({detail}), but it applies log_softmax itself: "
                           "the loss is squashed and the gradients are tiny.")
                    advice = "Pass the raw logits to cross_entropy (remove the softmax), or use nll_loss on log_softmax."
                else:
                    msg = f"nll_loss was given probabilities ({detail}), but it expects log-probabilities."
                    advice = "Apply log_softmax instead of softmax before nll_loss, or use cross_entropy on the logits."
                self.report(trainer, "loss-input", Severity.WARNING, msg, advice, where=where,
                            data={"loss": name, "row_sum": 1.0, "classes": classes})
            elif kind == "nll" and not L.looks_like_log_probabilities(rows):
                lse = float(torch.logsumexp(rows, -1).abs().max())
                self.report(
                    trainer, "loss-input", Severity.WARNING,
                    f"nll_loss was given scores that are not log-probabilities (logsumexp of a row is up to {lse:.3g}, "
                    "not 0): raw logits without log_softmax.",
                    "Apply log_softmax before nll_loss, or use cross_entropy on the logits.",
                    where=where, data={"loss": name, "max_abs_logsumexp": lse})
            return
        if kind in L.BINARY:
            if tuple(call.input.shape) != tuple(call.target.shape):
                self.report(
                    trainer, "loss-input", Severity.ERROR,
                    f"{name} got {L.broadcast_problem(call.input.shape, call.target.shape)}; it needs equal shapes.",
                    "Squeeze or reshape so prediction and target have the same shape (e.g. `logits.squeeze(-1)`).",
                    where=where, data={"input_shape": list(call.input.shape), "target_shape": list(call.target.shape)})
            t = call.target.detach()
            if t.numel() and (bool((t < 0).any()) or bool((t > 1).any())):
                lo, hi = float(t.min()), float(t.max())
                self.report(
                    trainer, "loss-input", Severity.ERROR,
                    f"{name} got targets from {lo:.3g} to {hi:.3g}; binary targets must lie in [0, 1].",
                    "Use cross_entropy for more than two classes, or map the labels to 0 and 1.",
                    where=where, data={"target_min": lo, "target_max": hi})
            if kind == "binary_cross_entropy_with_logits" and tag.get("activation") == "sigmoid":
                self.report(
                    trainer, "loss-input", Severity.WARNING,
                    "binary_cross_entropy_with_logits was given the output of a sigmoid, but it applies the sigmoid "
                    "itself: predictions are squashed into [0.5, 0.73] and the model learns very slowly.",
                    "Pass the raw logits (remove the sigmoid); apply the sigmoid only to read probabilities.",
                    where=where, data={"loss": name})
            if kind == "binary_cross_entropy":
                x = call.input.detach()
                if x.numel() and (bool((x < 0).any()) or bool((x > 1).any())):
                    lo, hi = float(x.min()), float(x.max())
                    self.report(
                        trainer, "loss-input", Severity.ERROR,
                        f"binary_cross_entropy got predictions from {lo:.3g} to {hi:.3g}; it expects probabilities.",
                        "Use binary_cross_entropy_with_logits on the raw outputs (numerically safer too).",
                        where=where, data={"input_min": lo, "input_max": hi})
            return
        problem = L.broadcast_problem(call.input.shape, call.target.shape)
        if problem:
            grows = L.broadcast_grows(call.input.shape, call.target.shape)
            self.report(
                trainer, "loss-input", Severity.ERROR if grows else Severity.WARNING,
                f"{name} got {problem}"
                + (": every prediction is compared with every target." if grows else ", silently."),
                "Give prediction and target the same shape, e.g. `pred.squeeze(-1)` or `target.unsqueeze(-1)`.",
                where=where, data={"input_shape": list(call.input.shape), "target_shape": list(call.target.shape)})

    # ------------------------------------------------------------------ after the first step

    def _training_loss(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loss: torch.Tensor) -> Optional[torch.Tensor]:
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            return None
        value = loss.detach().float()
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and hasattr(scaler, "get_scale"):
            # 16-mixed scales the loss before `on_before_backward`.
            value = value / float(scaler.get_scale())
        if pl_module.automatic_optimization:
            # Lightning divides the step's loss by `accumulate_grad_batches` before backward.
            value = value * trainer.accumulate_grad_batches
        self._loss_requires_grad = bool(loss.requires_grad)
        return value

    def _judge(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", training_loss: Optional[torch.Tensor]) -> None:
        facts = self.collector(trainer).facts
        grad_obs = [o for o in self._observations if o.depends_on_model and o.observed is not None]
        total = float(training_loss) if training_loss is not None else None
        if total is not None:
            facts["initial_loss"] = total
        main = grad_obs[0] if grad_obs else None
        if main is not None:
            self._hand_over(facts, main, grad_obs, total)

        if total is not None and not self._loss_requires_grad:
            self.report(
                trainer, "initial-loss", Severity.ERROR,
                f"The training loss ({total:.4g}) does not depend on any trainable parameter, so backward has "
                "nothing to update.",
                "Return the loss computed from the model's output (not a detached copy, not under no_grad, not "
                "`.item()`), and check that the parameters it uses have requires_grad=True.",
                data={"initial_loss": total})
            return
        if total is not None and total == 0.0:
            terms = [o for o in grad_obs if o.observed]
            term_text = (f" while its {_NAMES[terms[0].call.kind]} term is {terms[0].observed:.4g}" if terms else "")
            self.report(
                trainer, "initial-loss", Severity.ERROR if terms else Severity.WARNING,
                f"The training loss is exactly 0 at the first step{term_text}, so every gradient is zero and "
                "nothing is learned.",
                "Look for a loss multiplied by a zero weight or a mask that removes every element "
                "(e.g. a loss weight schedule starting at 0, a padding mask of all zeros).",
                data={"initial_loss": 0.0, **({"term": terms[0].observed} if terms else {})})
            return

        if (total is not None and main is not None and main.reduced is not None and main.reduced > 0
                and math.isclose(-total, main.reduced, rel_tol=0.05)):
            # Every recognised loss is >= 0: returning its negation is gradient ascent, training is broken.
            self.report(
                trainer, "initial-loss", Severity.ERROR,
                f"The training loss is {total:.4g}, the negation of its {_NAMES[main.call.kind]} term "
                f"({main.reduced:.4g}): the optimizer will make the model worse, not better.",
                "Return the loss itself from training_step, not its negation (look for a stray minus sign); to "
                "maximise a score, minimise its negative only when the score is not already a loss.",
                where=main.module, data={"initial_loss": total, "term": main.reduced})
            self.detail(trainer, "initial-loss", f"training loss {total:.4g} = -({_NAMES[main.call.kind]} {main.reduced:.4g})")
            return
        if self.expected_loss is not None:
            self._judge_expected(trainer, total if total is not None else (main.reduced if main else None))
            return
        if main is None:
            seen = [o for o in self._observations if not o.depends_on_model]
            self._skip_reason = (
                "the recognised loss calls of the first step do not depend on the model" if seen else
                f"no recognised loss call in the first training step (recognised: {_RECOGNISED}); "
                "pass `expected_loss=` for a custom loss")
            return
        for obs in grad_obs:
            self._judge_observation(trainer, obs)
        e = main.expectation
        if e is not None:
            text, start = initial_detail(_NAMES[main.call.kind], main.observed, e, main.call.kind,
                                         facts.get("init_matches_prior"))
            facts["initial_loss_start"] = start
            self.detail(trainer, "initial-loss", text)
        else:
            self._skip_reason = (f"{_NAMES[main.call.kind]}: the baseline is unknown for prediction "
                                 f"{tuple(main.call.input.shape)} and target {tuple(main.call.target.shape)} "
                                 "(no closed form for the best constant prediction)")

    def _judge_expected(self, trainer: "pl.Trainer", observed: Optional[float]) -> None:
        expected = self.expected_loss
        if observed is None or not math.isfinite(observed):
            self._skip_reason = "the first training loss could not be read"
            return
        self.detail(trainer, "initial-loss", f"loss {observed:.4g} at init; expected {expected:.4g}")
        ratio = observed / expected
        factor = self.threshold("initial-loss", "expected_factor")
        if L.outside_expected(observed, expected, factor):
            self.report(
                trainer, "initial-loss", Severity.WARNING,
                f"The loss before any update is {observed:.4g}, {ratio:.3g} times the expected {expected:.4g}.",
                "Check the last layer's initialisation (scale of its weights, its bias) and the loss itself; if the "
                "expectation is wrong, update `expected_loss`.",
                data={"initial_loss": observed, "expected_loss": expected, "ratio": ratio, "factor": factor})

    def _judge_observation(self, trainer: "pl.Trainer", obs: _Observation) -> None:
        e, call = obs.expectation, obs.call
        if e is None or obs.observed is None:
            return
        verdict = L.initial_loss_verdict(
            call.kind, obs.observed, e,
            **{name: self.threshold("initial-loss", name)
               for name in ("classification_factor", "classification_margin", "mse_factor", "linear_factor")})
        if verdict == "offset" and obs.activation is not None:
            # A squashed output (sigmoid / tanh, e.g. an autoencoder's reconstruction) starts mid-range by design;
            # its offset from the targets is bounded and no bias advice applies.
            return
        if verdict is None:
            return
        name = _NAMES[call.kind]
        layer = f"`{obs.module}`" if obs.module else "the last layer"
        bias_param = f"{obs.module}.bias" if obs.module else "the last layer's bias"
        data = {"loss": name, "initial_loss": obs.observed, "uniform_loss": e.uniform, "baseline_loss": e.baseline,
                "best_bias": e.best_bias[:100], "samples": e.count}
        if verdict == "overconfident":
            uniform_name = ("ln C" if call.kind in L.CLASSIFICATION else "ln 2" if call.kind in L.BINARY
                            else "the uniform distribution")
            self.report(
                trainer, "initial-loss", Severity.WARNING,
                f"{name} is {obs.observed:.4g} before any update, far above the {e.uniform:.4g} ({uniform_name}) of a "
                f"uniform prediction (best constant: {e.baseline:.4g}): the initial predictions are overconfident.",
                f"Shrink the initial weights of {layer} (e.g. scale them by 0.01 or zero them) and set {bias_param} "
                f"to {e.bias_meaning} {L.format_values(e.best_bias)}; if the inputs are not normalised, normalise "
                "them first (see input-scale).",
                where=obs.module, data=data)
            return
        if call.kind == "gaussian_nll":
            self.report(
                trainer, "initial-loss", Severity.WARNING,
                f"{name} is {obs.observed:.4g} before any update, {obs.observed - e.baseline:.3g} nats above the "
                f"{e.baseline:.4g} of the best constant prediction (the targets' mean and variance): the predicted "
                "mean or variance starts far from the targets'.",
                f"Set the mean head's bias to the target mean {L.format_values(e.best_bias)} (or standardise the "
                "targets) and start the variance near the targets' variance.",
                where=obs.module, data=data)
            return
        cause = L.regression_cause(call)
        data.update(cause)
        first = L.format_values(e.best_bias)
        if cause["offset"] >= cause["spread"]:
            value = f"{e.best_bias[0]:.4g}" if len(e.best_bias) == 1 else first
            self.report(
                trainer, "initial-loss", Severity.WARNING,
                f"{name} is {obs.observed:.4g} before any update, {obs.observed / max(e.baseline, 1e-30):.3g} times "
                f"the {e.baseline:.4g} of the best constant prediction: the output starts near "
                f"{cause['output_mean']:.3g} but the targets centre on {value}.",
                f"Set the output bias to {value} ({e.bias_meaning}), e.g. `{bias_param}.data.fill_({value})`, "
                "or standardise the targets.",
                where=obs.module, data=data)
        else:
            self.report(
                trainer, "initial-loss", Severity.WARNING,
                f"{name} is {obs.observed:.4g} before any update, {obs.observed / max(e.baseline, 1e-30):.3g} times "
                f"the {e.baseline:.4g} of the best constant prediction: the initial outputs are spread far too widely "
                f"(std {cause['output_std']:.3g}).",
                f"Shrink the initial weights of {layer} and set {bias_param} to {first} ({e.bias_meaning}).",
                where=obs.module, data=data)

    def _hand_over(self, facts: dict, main: _Observation, grad_obs: list[_Observation], total: Optional[float]) -> None:
        call, e = main.call, main.expectation
        # The labels' figures come from the call that compares with the batch's target, when there is one.
        labels = next((o for o in grad_obs if o.target_is_batch), main)
        self._hand_over_kind(facts, labels)
        if labels.expectation is not None and labels.expectation.prior is not None:
            facts["label_prior"] = labels.expectation.prior
            if labels.mean_prediction is not None:
                facts["init_matches_prior"] = L.init_matches_prior(labels.expectation.prior, labels.mean_prediction,
                                                                   binary=labels.call.kind in L.BINARY)
        if e is None:
            return
        scale = self._loss_scale(main, grad_obs, total)
        if scale is None:
            return
        baseline = e.baseline
        if call.kind in L.CLASSIFICATION and L.has_class_weights(call):
            # With class weights, one batch's weighted label frequencies are far too noisy to estimate the best
            # constant: a rare class weighted 10x is in a batch of 32 or not, and moves the estimate by 0.2-0.3
            # nats either way (balancing weights on digits: 2.07 on one batch for a true ln 10 = 2.30). Hand over
            # the uniform prediction's loss instead, ln C, which bounds the weighted best constant from above, so
            # the loss-trend check can only get more lenient.
            baseline = e.uniform
        elif call.kind in L.CLASSIFICATION and e.prior is not None:
            # One batch's label frequencies under-estimate the data set's entropy by about (K - 1) / 2N nats.
            seen = sum(1 for p in e.prior if p > 0)
            baseline += (seen - 1) / (2 * max(e.count, 1))
        facts["baseline_loss"] = baseline * scale
        facts["uniform_loss"] = e.uniform * scale
        facts["baseline_formula"] = e.formula
        # The label prior's entropy is the best constant's loss only for a plain (unweighted, unsmoothed, mean)
        # cross-entropy on the batch's own hard labels that is the whole training loss.
        # Class weights and label smoothing are handed over too: loss-trend applies them to every counted label.
        plain_ce = call.kind in L.CLASSIFICATION and not call.target.is_floating_point()
        plain_bce = (call.kind in L.BINARY and call.pos_weight is None and call.weight is None
                     and call.target.dim() > 0 and call.target.numel() == call.target.shape[0])
        facts["baseline_from_label_prior"] = bool(
            main.target_is_batch and math.isclose(scale, 1.0, rel_tol=1e-3) and (plain_ce or plain_bce))

    @staticmethod
    def _hand_over_kind(facts: dict, obs: _Observation) -> None:
        facts["loss_kind"] = L.KIND_FAMILY[obs.call.kind]
        facts["loss_target_is_batch_target"] = bool(obs.target_is_batch)
        facts["output_module"] = obs.module
        weighted = (L.has_class_weights(obs.call) if obs.call.kind in L.CLASSIFICATION else
                    obs.call.kind in L.BINARY and (obs.call.pos_weight is not None or obs.call.weight is not None))
        facts["loss_class_weighted"] = bool(weighted)
        if obs.call.kind in L.CLASSIFICATION:
            facts["num_classes"] = L.num_classes(obs.call)
            facts["ignore_index"] = obs.call.ignore_index
            facts["label_smoothing"] = obs.call.label_smoothing
            w = obs.call.weight
            if w is not None and w.numel() == facts["num_classes"] and L.has_class_weights(obs.call):
                facts["class_weight"] = [float(v) for v in w.detach().reshape(-1).tolist()]
            else:
                facts.pop("class_weight", None)
        else:  # a class count handed over by an earlier call would not describe this one
            for key in ("num_classes", "ignore_index", "label_smoothing", "class_weight"):
                facts.pop(key, None)

    @staticmethod
    def _loss_scale(main: _Observation, grad_obs: list[_Observation], total: Optional[float]) -> Optional[float]:
        """Factor from per-element figures to the training loss, when the training loss is this one call."""
        if main.observed is None or main.observed == 0:
            return None
        if total is None:
            return 1.0 if len(grad_obs) == 1 and main.call.reduction == "mean" else None
        if len(grad_obs) == 1 and main.reduced is not None and math.isclose(total, main.reduced, rel_tol=1e-3, abs_tol=1e-6):
            return main.reduced / main.observed
        return None

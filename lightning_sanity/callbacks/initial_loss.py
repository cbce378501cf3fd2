"""``initial-loss`` glue: the training loss of the first step against what the task predicts.

Mixed into :class:`~lightning_sanity.callbacks.loss_inspector.LossInspector`, which calls :meth:`_judge` at the
first backward (or at the end of a first step without one); the verdict and its thresholds are in
:mod:`lightning_sanity.checks.initial_loss`, the expectations in :mod:`lightning_sanity.checks.loss_expectations`.
"""

from __future__ import annotations

import math
from typing import Optional

import lightning.pytorch as pl
import torch

from lightning_sanity.callbacks._loss_observation import _NAMES, _RECOGNISED, _Observation
from lightning_sanity.callbacks._ctc_input import BASELINE_UNKNOWN as CTC_BASELINE_UNKNOWN
from lightning_sanity.callbacks._loss_targets import initial_detail, start_phrase
from lightning_sanity.checks import initial_loss as IL
from lightning_sanity.checks import losses as L
from lightning_sanity.checks.dead_params import within_default_bound
from lightning_sanity.findings import Severity


class _InitialLossGlue:
    """The ``initial-loss`` findings of :class:`~lightning_sanity.callbacks.loss_inspector.LossInspector`."""

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
        self._step.loss_requires_grad = bool(loss.requires_grad)
        return value

    def _judge(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", training_loss: Optional[torch.Tensor]) -> None:
        facts = self.collector(trainer).facts
        grad_obs = [o for o in self._step.observations if o.depends_on_model and o.observed is not None]
        total = float(training_loss) if training_loss is not None else None
        if total is not None:
            facts["initial_loss"] = total
        main = grad_obs[0] if grad_obs else None
        if main is not None:
            self._hand_over(facts, main, grad_obs, total)

        if total is not None and not self._step.loss_requires_grad:
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
            seen = [o for o in self._step.observations if not o.depends_on_model]
            self._step.skip_reason = (
                "the recognised loss calls of the first step do not depend on the model" if seen else
                CTC_BASELINE_UNKNOWN if getattr(self, "_ctc_seen", False) else
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
            if main.mask_share is not None:
                facts["loss_mask_share"] = main.mask_share  # prediction-jitter: the rest of the outputs is untrained
                text += f"; counted where its 0/1 mask is 1 ({main.mask_share:.2%} of the elements)"
            if main.margin_logits:
                text += ("; the logits are edited with the target (a margin head such as ArcFace or CosFace lowers the "
                         "true class's logit by design), so a start above ln C is not judged")
            elif main.cosine_logits:
                text += "; the logits are a scaled cosine similarity (their range is set by the scale, not the init)"
            self.detail(trainer, "initial-loss", text)
        else:
            why = ("negative targets: no Poisson rate fits them" if main.call.kind == "poisson_nll"
                   and bool((main.call.target < 0).any()) else "no closed form for the best constant prediction")
            self._step.skip_reason = (f"{_NAMES[main.call.kind]}: the baseline is unknown for prediction "
                                 f"{tuple(main.call.input.shape)} and target {tuple(main.call.target.shape)} "
                                 f"({why})")

    def _judge_expected(self, trainer: "pl.Trainer", observed: Optional[float]) -> None:
        expected = self.expected_loss
        if observed is None or not math.isfinite(observed):
            self._step.skip_reason = "the first training loss could not be read"
            return
        self.detail(trainer, "initial-loss", f"loss {observed:.4g} at init; expected {expected:.4g}")
        ratio = observed / expected
        factor = self.threshold("initial-loss", "expected_factor")
        if IL.outside_expected(observed, expected, factor):
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
        verdict = IL.initial_loss_verdict(
            call.kind, obs.observed, e,
            **{name: self.threshold("initial-loss", name)
               for name in ("classification_factor", "classification_margin", "mse_factor", "linear_factor")})
        if verdict == "offset" and obs.activation is not None:
            # A squashed output (sigmoid / tanh, e.g. an autoencoder's reconstruction) starts mid-range by design;
            # its offset from the targets is bounded and no bias advice applies.
            return
        if verdict == "overconfident" and obs.margin_logits:
            return  # a margin head lowers the true class's logit on purpose (s * cos(theta + m)): above ln C by design
        if verdict == "overconfident" and obs.cosine_logits:
            # s * cos(x, W) with both sides L2-normalised: the logits' range is set by the scale s, not by the weights,
            # so "shrink the initial weights" cannot apply (checks/loss_graph.is_scaled_cosine).
            self.report(
                trainer, "initial-loss", Severity.INFO,
                f"{_NAMES[call.kind]} is {obs.observed:.4g} before any update, above the {e.uniform:.4g} of a uniform "
                "prediction, but the logits are a scaled cosine similarity (L2-normalised features times L2-normalised "
                "class weights, as in ArcFace, CosFace or a cosine classifier): their range is set by the scale (and "
                "margin), not by the initialisation, so a start above the uniform loss is by design.",
                "Nothing to fix at init; if the loss stays high, lower the scale or the margin.",
                where=obs.module, data={"loss": _NAMES[call.kind], "initial_loss": obs.observed,
                                        "uniform_loss": e.uniform, "cosine_logits": True})
            return
        if verdict is None:
            return
        name = _NAMES[call.kind]
        layer = f"`{obs.module}`" if obs.module else "the last layer"
        bias_param = f"{obs.module}.bias" if obs.module else "the last layer's bias"
        data = {"loss": name, "initial_loss": obs.observed, "uniform_loss": e.uniform, "baseline_loss": e.baseline,
                "best_bias": e.best_bias[:100], "samples": e.count}
        phrase, start = start_phrase(obs.observed, e, call.kind,
                                     self.collector(trainer).facts.get("init_matches_prior"))
        data["start"] = start
        excuse = _pretrained_start(trainer.lightning_module, obs.module, layer) if verdict == "overconfident" else None
        if excuse is not None:
            why, advice, key = excuse
            self.report(
                trainer, "initial-loss", Severity.INFO,
                f"{name} is {obs.observed:.4g} before any update, above the {e.uniform:.4g} of a uniform prediction: "
                f"{phrase}. {why}", advice, where=obs.module, data={**data, key: True})
            return
        if verdict == "overconfident":
            uniform_name = ("ln C" if call.kind in L.CLASSIFICATION else "ln 2" if call.kind in L.BINARY
                            else "the uniform distribution")
            advice = (f"Shrink the initial weights of {layer} (e.g. scale them by 0.01 or zero them) and set "
                      f"{bias_param} to {e.bias_meaning} {IL.format_values(e.best_bias)}; if the inputs are not "
                      "normalised, normalise them first (see input-scale).")
            tied = _tied_embeddings(trainer.lightning_module, obs.module, len(e.best_bias))
            if tied:
                head, others = tied[0], tied[1:]
                data["tied_embedding"] = head
                advice = (f"`{head}` is both the input embedding and the output layer (tied weights) and still holds "
                          "nn.Embedding's default N(0, 1) rows, so the first logits spread with the square root of "
                          f"the width. Initialise it with a small std (e.g. `nn.init.normal_({head}.weight, "
                          "std=0.02)`, as GPT-2 does)")
                advice += (f" and give {', '.join(f'`{o}`' for o in others)} the same small std: shrinking the "
                           "shared weight alone leaves the tokens drowned under N(0, 1) position embeddings."
                           if others else ".")
            self.report(
                trainer, "initial-loss", Severity.WARNING,
                f"{name} is {obs.observed:.4g} before any update, far above the {e.uniform:.4g} ({uniform_name}) of a "
                f"uniform prediction: {phrase}; the initial predictions are overconfident.",
                advice, where=obs.module, data=data)
            return
        if call.kind == "gaussian_nll":
            if IL.gaussian_start_within_reach(call):
                return  # mean and variance where any untrained head starts them, targets within reach: learned early
            self.report(
                trainer, "initial-loss", Severity.WARNING,
                f"{name} is {obs.observed:.4g} before any update, {obs.observed - e.baseline:.3g} nats above the "
                f"{e.baseline:.4g} of the best constant prediction (the targets' mean and variance): the predicted "
                "mean or variance starts far from the targets'.",
                f"Set the mean head's bias to the target mean {IL.format_values(e.best_bias)} (or standardise the "
                "targets) and start the variance near the targets' variance.",
                where=obs.module, data=data)
            return
        cause = IL.regression_cause(call)
        if IL.offset_within_reach(cause):
            return  # an untrained output near 0, targets within unit-scale reach of it: ordinary bias learning
        if IL.spread_from_default_init(cause):
            return  # outputs spread as a default init spreads them: the targets' small scale, not the init
        data.update(cause)
        first = IL.format_values(e.best_bias)
        if cause["offset"] >= cause["spread"]:
            value = f"{e.best_bias[0]:.4g}" if len(e.best_bias) == 1 else first
            self.report(
                trainer, "initial-loss", Severity.WARNING,
                f"{name} is {obs.observed:.4g} before any update, {obs.observed / max(e.baseline, 1e-30):.3g} times "
                f"the {e.baseline:.4g} of the best constant prediction ({phrase}): the output starts near "
                f"{cause['output_mean']:.3g} but the targets centre on {value}, {cause['centre_gap']:.3g} away, beyond "
                f"the {IL.OFFSET_REACH:g} a unit-scale network covers.",
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


def _pretrained_start(model: torch.nn.Module, head: Optional[str], layer: str) -> Optional[tuple[str, str, str]]:
    """Why an overconfident first loss comes from pretraining, not from an initialisation the user chose:
    ``(why, advice, data key)``, or None."""
    if _frozen(model, head):
        # A frozen output layer was trained before (a LoRA or adapter fine-tune of a pretrained model): its
        # confidence is what pretraining taught it.
        return (f"{layer} is frozen: its weights come from pretraining, not from an initialisation, and a pretrained "
                "model starts a new task with the confidence of its old one.",
                "Nothing to fix at init; if the loss stays high, check that the trainable parts (adapters, norms) "
                "reach the output.", "frozen_head")
    if _fresh_head_on_frozen_features(model, head):
        # The bar assumes a default-initialised head reads features of unit scale. A pretrained part that is
        # frozen sets its own scale, which the user neither chose nor should change; the head recovers in a
        # few steps.
        return (f"{layer} is a new head at PyTorch's default initialisation on features from frozen (pretrained) "
                "layers; their scale, not the head's initialisation, spreads the first logits.",
                f"Optional: zero-initialise {layer} (weights and bias) so that fine-tuning starts at the uniform "
                "prediction, or set the bias to the log class frequencies.", "fresh_head")
    return None


def _frozen(model: torch.nn.Module, head: Optional[str]) -> bool:
    """Whether the module ``head`` has parameters and none of them trains."""
    try:
        params = list(model.get_submodule(head).parameters()) if head else []
    except AttributeError:
        return False
    return bool(params) and not any(p.requires_grad for p in params)


def _fresh_head_on_frozen_features(model: torch.nn.Module, head: Optional[str]) -> bool:
    """Whether ``head``'s weight lies within PyTorch's default bound (``1/sqrt(fan_in)``: the default draw or
    anything smaller) while at least half of the model's parameters are frozen: a new head on a pretrained part
    (fine-tuning), whose first logits spread with the features, not with an initialisation the user chose."""
    if not head:
        return False
    try:
        weight = model.get_submodule(head).weight
    except AttributeError:
        return False
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2 or weight[0].numel() < 1:
        return False
    params = list(model.parameters())
    if 2 * sum(p.numel() for p in params if not p.requires_grad) < sum(p.numel() for p in params):
        return False
    return bool(within_default_bound(weight))


def _tied_embeddings(model: torch.nn.Module, head: Optional[str], classes: int) -> list[str]:
    """The ``nn.Embedding`` that serves as the output layer (tied weights, as in GPT-2 or T5) when it still holds
    nn.Embedding's N(0, 1) default, followed by the model's other embeddings at that default (positions, segments):
    ``[]`` when the head is no such embedding. ``head`` is the module the first logits were traced to, if any."""
    defaults = [(name, m) for name, m in model.named_modules()
                if isinstance(m, torch.nn.Embedding) and m.weight.numel() > 1 and float(m.weight.detach().std()) > 0.5]
    if head:
        try:
            weight = model.get_submodule(head).weight
        except AttributeError:
            return []
        tied = [name for name, m in defaults if m.weight is weight]
    else:
        # Logits from `h @ emb.weight.T` trace to no module: an embedding with one row per class is the head.
        tied = [name for name, m in defaults if m.num_embeddings == classes]
    if len(tied) != 1:
        return []
    return tied + [name for name, m in defaults if name != tied[0]]

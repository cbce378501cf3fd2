"""``loss-input`` glue: what one loss call of the first step is fed, reported before the call runs.

Mixed into :class:`~lightning_sanity.callbacks.loss_inspector.LossInspector`, which calls :meth:`_check_input` from
its watch of the first step; the math is in :mod:`lightning_sanity.checks.losses` (logits, shapes, class indices)
and, for the target side, :mod:`lightning_sanity.checks.loss_inputs` through ``_loss_targets``.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.callbacks._loss_observation import _NAMES, _Observation
from lightning_sanity.callbacks._loss_targets import check_targets
from lightning_sanity.checks import losses as L
from lightning_sanity.checks import pair_broadcast
from lightning_sanity.checks.bounded_targets import unreachable_message, unreachable_targets
from lightning_sanity.checks.targets import twice_shifted
from lightning_sanity.findings import Severity


class _LossInputGlue:
    """The ``loss-input`` findings of :class:`~lightning_sanity.callbacks.loss_inspector.LossInspector`."""

    def _report_pairwise(self, found: dict[str, Any]) -> None:
        """An element-wise op paired every prediction with every target (:mod:`~lightning_sanity.callbacks._lineage`)."""
        self._step.pairwise = True
        text = pair_broadcast.describe(found["op"], found["prediction"], found["target"], found["result"],
                                       found["batch"])
        self.report(self._step.trainer, "loss-input", Severity.ERROR, text["message"], text["advice"],
                    key="pairwise-broadcast", data=text["data"])

    def _check_input(self, obs: _Observation, tag: dict[str, Any]) -> None:
        trainer = self._step.trainer
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
                elif twice_shifted(call.target, self._step.batch_input, self._step.batch_target, call.ignore_index):
                    self.report(
                        trainer, "loss-input", Severity.ERROR,
                        f"{name} scores the prediction at position t on input token t + 2: the batch's labels are "
                        "already the input ids shifted left by one, and the loss shifts them once more, so the "
                        "model is trained to skip a token (and never learns the next one).",
                        "Shift once: with a model that shifts inside (HuggingFace `...ForCausalLM`), pass "
                        "`labels = input_ids` (padding set to -100); otherwise compare `logits` with the shifted "
                        "labels without shifting again.",
                        where=where, key="twice-shifted", data={"shift": 2})
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
        if kind in L.REGRESSION and tag.get("range") is not None:
            found = unreachable_targets(call.target, tag["range"])
            if found:  # a squashed prediction that cannot reach the targets
                message, advice = unreachable_message(name, tag.get("activation", "squashing"), found)
                self.report(trainer, "loss-input", Severity.WARNING, message, advice, where=where,
                            key="unreachable-targets",
                            data={"loss": name, "activation": tag.get("activation"), **found})

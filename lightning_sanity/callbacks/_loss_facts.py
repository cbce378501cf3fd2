"""What the loss inspector hands to the other checks through the collector's ``facts`` (see
:class:`~lightning_sanity.callbacks.loss_inspector.LossInspector` for the keys): the loss kind, the class count, the
label prior, and the baselines on the training loss's scale.
"""

from __future__ import annotations

import math
from typing import Optional

from lightning_sanity.callbacks._loss_observation import _Observation
from lightning_sanity.checks import loss_expectations as LE
from lightning_sanity.checks import losses as L


class _LossFacts:
    """Hand-over of figures to other checks, mixed into :class:`~lightning_sanity.callbacks.loss_inspector.LossInspector`."""

    def _hand_over(self, facts: dict, main: _Observation, grad_obs: list[_Observation], total: Optional[float]) -> None:
        call, e = main.call, main.expectation
        # The labels' figures come from the call that compares with the batch's target, when there is one.
        labels = next((o for o in grad_obs if o.target_is_batch), main)
        self._hand_over_kind(facts, labels)
        if labels.expectation is not None and labels.expectation.count > 0:
            facts["loss_elements"] = int(labels.expectation.count)  # the terms one batch's loss averages
        else:
            facts.pop("loss_elements", None)
        if labels.expectation is not None and labels.expectation.prior is not None:
            facts["label_prior"] = labels.expectation.prior
            if labels.mean_prediction is not None:
                facts["init_matches_prior"] = LE.init_matches_prior(labels.expectation.prior, labels.mean_prediction,
                                                                    binary=labels.call.kind in L.BINARY)
        if total and main.reduced is not None and math.isfinite(total) and math.isfinite(main.reduced):
            facts["main_loss_share"] = main.reduced / total
        else:
            facts.pop("main_loss_share", None)
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
        facts["loss_target_from_model"] = obs.target_from_model
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
        pos = obs.call.pos_weight if obs.call.kind in L.BINARY else None
        if pos is not None and 0 < pos.numel() <= 4096:  # loss-trend's effective batch size (loss_oscillation)
            facts["pos_weight"] = [float(v) for v in pos.detach().reshape(-1).tolist()]
        else:
            facts.pop("pos_weight", None)

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

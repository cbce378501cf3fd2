"""The findings :class:`~lightning_sanity.callbacks.predictions.PredictionDynamics` makes at a snapshot, and the
extra forwards of the fixed batch that locate them: ``train-mode`` (eval mode not deterministic), ``constant-output``
during training (recorded as episodes, reported at the end) and ``non-finite`` predictions.

The judgements themselves are pure functions (:func:`~lightning_sanity.checks.outputs.outputs_agree`,
:func:`~lightning_sanity.checks.outputs.is_constant_across_samples`); this mixin reports them with the module
that caused them.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from lightning_sanity.replays.rng import isolate_rng

from lightning_sanity._compat import current_batch_idx
from lightning_sanity.batch import batch_size, first_tensor, slice_batch, split_batch
from lightning_sanity.callbacks._extra_forward import eval_mode
from lightning_sanity.callbacks._eval_draws import MaskDrawWatch
from lightning_sanity.callbacks._fixed_batch import call_model, trace_modules
from lightning_sanity.checks.collapse import collapsed_output, output_spread, unit_subset
from lightning_sanity.checks.episodes import Episodes, unconverged_batchnorm
from lightning_sanity.checks.outputs import is_constant_across_samples, outputs_agree

log = logging.getLogger(__name__)


@dataclasses.dataclass
class SnapshotFindings:
    """What was found on the fixed batch so far: checks already reported, the constant-output episodes and the
    module where the output first became constant."""

    reported: set[str] = dataclasses.field(default_factory=set)
    constant: Episodes = dataclasses.field(default_factory=Episodes)
    constant_where: Optional[str] = None
    start_spread: Optional[float] = None  # the output's spread across the fixed batch at the first snapshot
    #: whether a second evaluation of a few samples compares with the first evaluation's rows (see ``_second_look``)
    slices_compare: bool = True


#: the second evaluation of a snapshot (eval determinism) takes this share of the fixed batch's samples, at least one
_SECOND_LOOK_SHARE = 1 / 8


def second_look_samples(samples: Optional[int]) -> Optional[int]:
    """How many of the fixed batch's ``samples`` the eval-determinism forward evaluates, or None for all.

    >>> second_look_samples(32), second_look_samples(4), second_look_samples(None)
    (4, 1, None)
    """
    if not samples or samples < 2:
        return None
    return max(1, int(samples * _SECOND_LOOK_SHARE))


class FixedBatchFindings:
    """Mixin of :class:`~lightning_sanity.callbacks.predictions.PredictionDynamics`: reports what a snapshot
    shows, with ``self._found`` (:class:`SnapshotFindings`) and ``self.forward_fn``."""

    _found: SnapshotFindings
    forward_fn: Any
    get_input: Any
    get_target: Any

    def _second_look(self, pl_module: "pl.LightningModule", batch: Any, x: Any, out: torch.Tensor,
                     world_size: int = 1) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
        """Evaluate the fixed batch again (inside the caller's ``isolate_rng`` and eval mode, so that random ops
        draw anew): None when it agrees with the first evaluation ``out``, else both evaluations.

        Dropout left on in eval mode changes every sample's output, so the first eighth of the samples tell
        (a fraction of a forward); only when they disagree is the whole batch evaluated again, to tell randomness
        from an output whose rows depend on the other samples (a (B, B) similarity, attention across the batch)
        or a batch size that changes the kernels' rounding. Such a model is evaluated whole from then on. Under
        several processes every rank evaluates the whole batch, as before: a confirming forward on one rank alone
        could hang a sharded model (FSDP gathers weights in forward).
        """
        samples = batch_size(batch)
        k = second_look_samples(samples) if self._found.slices_compare and world_size == 1 else None
        if k is not None and k < samples and out.dim() > 0 and out.shape[0] == samples:
            try:
                part = slice_batch(batch, slice(0, k))
                part_x, _ = split_batch(part, self.get_input, self.get_target)
                if outputs_agree(out[:k], call_model(pl_module, part, part_x, self.forward_fn)):
                    return None
            except Exception as err:  # a forward that needs the whole batch: compare it whole
                log.debug("lightning_sanity: evaluating part of the fixed batch failed: %r", err)
        else:
            k = None
        again = call_model(pl_module, batch, x, self.forward_fn)
        if outputs_agree(out, again):
            if k is not None:
                self._found.slices_compare = False
            return None
        return out, again

    def _report_nonfinite(self, trainer: "pl.Trainer", out: torch.Tensor) -> None:
        if "non-finite" in self._found.reported or not trainer.is_global_zero:
            return
        self._found.reported.add("non-finite")
        bad = int((~torch.isfinite(out)).sum())
        self.report(
            trainer, "non-finite", "error",
            f"The model's predictions on the fixed batch hold {bad} non-finite values (NaN/Inf) out of "
            f"{out.numel()} at step {trainer.global_step}: the weights or the forward pass have gone non-finite.",
            "Look at the non-finite check's findings for the first step and module that went non-finite; lower the "
            "learning rate, add gradient clipping, or guard divisions and logs in forward.",
            where="fixed-batch predictions", data={"non_finite": bad, "values": out.numel()}, key="fixed-batch",
        )

    def _report_stochastic(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, x: Any,
                           out: torch.Tensor, again: torch.Tensor) -> None:
        self._found.reported.add("train-mode")
        if not trainer.is_global_zero:
            return
        diff = float((out.float() - again.float()).abs().max()) if out.shape == again.shape else float("nan")
        culprit = self._diagnose(trainer, pl_module, batch, x, mode="stochastic")
        place = f"first in `{culprit}`" if culprit else f"in {type(pl_module).__name__}.forward itself"
        dropout = self._dropout_in_eval(trainer, pl_module, batch, x)
        masks = sorted(getattr(self, "_mask_draws", ()) or ())
        if dropout is not None and not dropout and masks:
            disagree = (f"Two evaluations of the same batch in eval mode with the same weights disagree (largest "
                        f"difference {diff:.3g}), {place}")
            if getattr(self, "_mask_objective", False):
                # The mask picks the targets of the forward's own loss (masked LM, ELECTRA): the objective itself.
                severity, source = "info", "objective-masking"
                message = (f"{disagree}: the forward draws a random mask in eval ({', '.join(masks)}) and picks the "
                           "targets of its own loss with it (masked-language-model or ELECTRA-style pre-training), "
                           "so each validation loss is over a new random mask.")
                advice = ("Nothing to do if that is the objective; for validation figures that compare between "
                          "epochs, draw the validation masks once (a seeded generator) in the validation data.")
            else:  # SpecAugment, cutout, token masking: a training-time augmentation running in eval
                severity, source = "warning", "masking"
                message = (f"{disagree}: the model is not deterministic in eval mode. A random mask is drawn in eval "
                           f"({', '.join(masks)}): an augmentation such as SpecAugment, cutout or token masking, or "
                           "stochastic depth (drop-path), runs without `if self.training:`, so validation and "
                           "inference see damaged inputs or features and change from call to call.")
                advice = ("Put the augmentation behind `if self.training:` (or move it to the training transforms), "
                          "and pass `self.training` to a `drop_path(x, p, training)` function (a default of True "
                          "keeps it on in eval); eval and inference should see the inputs and every branch whole.")
            self.report(trainer, "train-mode", severity, message, advice, where=culprit, key="eval-masking",
                        data={"max_abs_difference": diff, "module": culprit, "source": source, "draws": masks})
            return
        if dropout is not None and not dropout:
            # Randomness other than dropout (randn, rand, bernoulli, ...): a VAE's reparameterisation or a
            # diffusion model's noise samples in eval mode on purpose, so this is only worth knowing.
            self.report(
                trainer, "train-mode", "info",
                f"Two evaluations of the same batch in eval mode with the same weights disagree (largest difference "
                f"{diff:.3g}), {place}, and no dropout runs in training mode: the model samples in eval mode.",
                "If that is intended (a VAE's reparameterisation, a diffusion model's noise) there is nothing to do; "
                "otherwise put the sampling behind `if self.training:` or use the mean in evaluation.",
                where=culprit, data={"max_abs_difference": diff, "module": culprit, "source": "sampling"},
                key="eval-sampling",
            )
            return
        self.report(
            trainer, "train-mode", "warning",
            f"Two evaluations of the same batch in eval mode with the same weights disagree (largest difference "
            f"{diff:.3g}), {place}: something random still runs in eval mode, so validation and inference are noisy.",
            "Use `nn.Dropout` modules or pass `training=self.training` to `F.dropout`; keep noise and augmentation "
            "out of `forward` or behind `if self.training:`.",
            where=culprit, data={"max_abs_difference": diff, "module": culprit, "source": "dropout"},
            key="eval-determinism",
        )

    def _dropout_in_eval(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                         x: Any) -> Optional[bool]:
        """Whether a dropout op runs in training mode during an eval-mode forward; None when it cannot be told."""
        if trainer.world_size > 1:
            return None  # no extra forward on one rank alone (see `_diagnose`)
        try:
            watch = MaskDrawWatch()
            with isolate_rng(), torch.no_grad(), eval_mode(pl_module), watch:
                call_model(pl_module, batch, x, self.forward_fn)
            self._mask_draws, self._mask_objective = watch.mask_draws, watch.objective
            return watch.seen
        except Exception as err:  # telling the source apart is a bonus: keep the warning
            log.debug("lightning_sanity: could not watch for dropout: %r", err)
            return None

    def _spread_collapse(self, out: torch.Tensor, y: Optional[torch.Tensor], kind: Optional[str],
                         started: bool) -> Optional[dict[str, Any]]:
        """The output's spread across the fixed batch (the first snapshot's kept as the start), and whether it has
        collapsed against it (:func:`~lightning_sanity.checks.collapse.collapsed_output`)."""
        try:
            spread = output_spread(out)
            found = self._found
            if found.start_spread is None:
                found.start_spread = spread if spread is not None and spread > 0 else 0.0
                return None
            if not started or spread is None or not found.start_spread:
                return None
            samples = int(out.shape[0])
            target = None
            if kind == "regression" and y is not None and y.is_floating_point() and y.shape[0] == samples \
                    and y.numel() == out.numel():
                target = output_spread(y)
            same = None
            if kind in ("classification", "binary", "sequence"):
                flat = out.detach().reshape(samples, -1) if kind == "classification" else unit_subset(out)
                cut = 0.5 if bool((flat >= 0).all() and (flat <= 1).all()) else 0.0  # probabilities or logits
                classes = flat.argmax(-1) if kind == "classification" and flat.shape[1] > 1 else (flat > cut)
                same = bool((classes == classes[:1]).all())
            collapsed = collapsed_output(spread, found.start_spread, target, samples, same)
            return {"collapsed": collapsed, "spread": spread, "start_spread": found.start_spread,
                    "target_spread": target}
        except Exception as err:  # a diagnostic: never the run
            log.debug("lightning_sanity: output spread failed: %r", err)
            return None

    def _judge_constant(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, x: Any,
                        out: torch.Tensor, spread: Optional[dict[str, Any]] = None) -> None:
        inputs = x if isinstance(x, torch.Tensor) else first_tensor(x)
        if not isinstance(inputs, torch.Tensor) or is_constant_across_samples(inputs, rtol=0.0, atol=0.0):
            return  # identical inputs: an identical output says nothing
        if not trainer.is_global_zero:
            return
        exact = is_constant_across_samples(out)
        near = not exact and spread is not None and spread["collapsed"]
        # Judged at the end (conclude): a collapse that clears later is withdrawn to info, never a lasting warning.
        if self._found.constant.update(exact or near, trainer.global_step, trainer.current_epoch,
                                 current_batch_idx(trainer)):
            episode = self._found.constant.current
            if self._found.constant_where is None and exact:
                self._found.constant_where = self._diagnose(trainer, pl_module, batch, x, mode="constant")
            episode.info.update(where=self._found.constant_where if exact else None, samples=int(out.shape[0]),
                                batchnorm=unconverged_batchnorm(pl_module))
            if near:
                episode.info["spread"] = {k: v for k, v in spread.items() if k != "collapsed"}
        elif near and self._found.constant.current is not None and "spread" in self._found.constant.current.info:
            self._found.constant.current.info["last_spread"] = spread["spread"]

    def _diagnose(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any, x: Any,
                  mode: str) -> Optional[str]:
        """Name the first module (by when its forward finished) that causes the symptom, with forward hooks."""
        if trainer.world_size > 1:
            # Extra forwards on rank 0 alone could hang a sharded model (FSDP gathers weights in forward).
            return None
        try:
            samples = batch_size(batch)
            with isolate_rng(), torch.no_grad(), eval_mode(pl_module):
                call = lambda: call_model(pl_module, batch, x, self.forward_fn)  # noqa: E731
                first = trace_modules(pl_module, call, samples)
                second = trace_modules(pl_module, call, samples) if mode == "stochastic" else None
        except Exception as err:  # diagnosis is a bonus
            log.debug("lightning_sanity: module diagnosis failed: %r", err)
            return None
        for i, (name, inp, outp) in enumerate(first):
            if mode == "constant":
                if inp is not None and not inp["constant"] and outp is not None and outp["constant"]:
                    return name or None
            elif second is not None and i < len(second) and second[i][0] == name:
                same_in = inp is None or second[i][1] is None or torch.equal(inp["print"], second[i][1]["print"])
                differs = outp is not None and second[i][2] is not None and not outputs_agree(
                    outp["print"], second[i][2]["print"])
                if same_in and differs:
                    return name or None
        return None

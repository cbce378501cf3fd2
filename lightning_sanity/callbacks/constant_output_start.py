"""``constant-output`` glue at the start of fit: do samples whose inputs differ get different outputs?

Mixed into :class:`~lightning_sanity.callbacks.model_checks.ModelChecks`, which calls :meth:`_judge_constant` on the
first batch's :class:`~lightning_sanity.callbacks._flow_run._FlowRun`; the judgement is in
:mod:`lightning_sanity.checks.flow`. (The same check during training is reported by ``_constant_output``.)
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch

from lightning_sanity.callbacks._float64_rerun import float64_rerun
from lightning_sanity.callbacks._flow_run import _FlowRun, _place, _SkipOne
from lightning_sanity.checks import flow
from lightning_sanity.checks.episodes import batchnorm_advice, unconverged_batchnorm
from lightning_sanity.findings import Severity


class _ConstantOutputGlue:
    """The first-batch ``constant-output`` findings of :class:`~lightning_sanity.callbacks.model_checks.ModelChecks`."""

    def _judge_constant(self, trainer: "pl.Trainer", run: "_FlowRun") -> None:
        check, how = "constant-output", run.how
        rows = run.views[0][1].detach()
        differing = run.differing_inputs()
        perturbed = False
        if differing:
            spread, scale = flow.output_spread(rows, differing)
        else:
            if not run.can_perturb:
                raise _SkipOne(check, "every sample of the first batch has the same input, and it is not a float tensor to perturb")
            rows_p = run.perturbed_rows()
            spread, scale = flow.output_spread(torch.stack([rows[0], rows_p[0]]), [1])
            perturbed = True
        compared = len(differing) + (1 if perturbed else 0)
        self.detail(trainer, check, f"output spread {spread:.3g} (scale {scale:.3g}) over {compared} other input(s)")
        precise = None
        if not flow.is_constant(spread, scale):
            if perturbed or not flow.is_suspect(spread, scale):
                return
            try:  # round-off amplified inside the network (a norm over one element) hides a constant output
                precise = float64_rerun(run, differing)
            except Exception:  # a model that cannot run in float64 keeps the float32 verdict
                precise = None
            if precise is None or not flow.is_constant(precise["spread"], precise["scale"]):
                return
        spot = precise["spot"] if precise else run.locate_constant(perturbed)
        where = spot["where"] if spot else None
        zero_init = spot is not None and spot.get("zero_weights", False)
        data = {"output_spread": spread, "output_scale": scale, "samples_compared": compared,
                "perturbed_copy": perturbed, "called_as": how}
        if spot:
            data.update({k: v for k, v in spot.items() if k != "where"})
        rounding = ""
        if precise:
            data["float64_spread"] = precise["spread"]
            rounding = (f"; that difference is round-off: run in float64 the outputs differ by "
                        f"{precise['spread']:.3g}")
        if zero_init:
            self.report(
                trainer, check, Severity.INFO,
                f"The model's output is the same for every input at the start because `{where}` starts with all-zero "
                "weights; that is fine if the zero initialisation is deliberate.",
                "Nothing to do if you zero-initialise this layer on purpose; gradients still reach its weights.",
                where=where, data=data, key="zero-init",
            )
            return
        located = f" The inputs stop making a difference {_place(spot, run.model)}." if spot else ""
        unconverged = unconverged_batchnorm(run.model)
        if unconverged:
            # Eval mode normalises with running statistics that are still (mostly) their initial 0/1: the collapse
            # may be theirs, not the model's. The fixed-batch snapshots judge it again as the statistics converge.
            data["batchnorm"] = unconverged
            self.report(
                trainer, check, Severity.INFO,
                f"In eval mode the model gives the same output (largest difference {spread:.3g} at output scale "
                f"{scale:.3g}{rounding}) for {compared} input(s) that differ, while its BatchNorm running statistics are "
                f"still near their initial 0/1; judged again during training as they converge.{located}",
                batchnorm_advice(unconverged), where=where, data=data, key="constant-unconverged-batchnorm")
            return
        change = run.gradient_change(run.views[0][1], differing)
        if flow.gradient_carries_input(change, scale):
            data["gradient_change"] = change
            self.report(
                trainer, check, Severity.INFO,
                f"In eval mode the model gives the same output (largest difference {spread:.3g} at output scale "
                f"{scale:.3g}) for {compared} input(s) that differ, but its gradient still depends on the input (a "
                f"straight-through estimator or another surrogate gradient around a discrete step, such as vector "
                f"quantisation that snaps every sample to the same code at init): it can learn.{located}",
                "Nothing to do if training spreads the codes; if the output stays constant, initialise the codebook "
                "from encoder outputs or lower the commitment weight.",
                where=where, data=data, key="constant-surrogate-gradient")
            return
        self.report(
            trainer, check, Severity.ERROR,
            f"The model gives the same output (largest difference {spread:.3g} at output scale {scale:.3g}{rounding}) "
            f"for {compared} input(s) that differ, so it cannot learn anything from its input.{located}",
            "Check the forward for an input multiplied by zero, overwritten, detached into a constant or not used "
            "at all, or a normalisation over a single value (GroupNorm with one channel per group, InstanceNorm or "
            "LayerNorm on a 1x1 or size-1 axis, which outputs only its bias); print each layer's output for two "
            "different samples to see where they stop differing.",
            where=where, data=data, key="constant",
        )

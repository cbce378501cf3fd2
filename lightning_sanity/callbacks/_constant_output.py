"""constant-output during training: report the episodes :class:`PredictionDynamics` recorded, once, at the end.

A collapse still there at the last snapshot is a warning located at the snapshot where it began; one that cleared
is withdrawn to ``info`` with the step it cleared. The summary row shows the same figures as the finding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import lightning.pytorch as pl

from lightning_sanity.checks.episodes import Episodes, batchnorm_advice

if TYPE_CHECKING:
    from lightning_sanity.callbacks.base import SanityCallback

_ADVICE = ("Look for a layer that zeroes or overwrites its input (dead ReLUs after a too-high learning rate, a gate "
           "stuck at 0, returning an initial state instead of the computed one), and lower the learning rate if "
           "the collapse followed a loss spike.")
_NEAR_ADVICE = ("Look for a term that pays the model to ignore its input and outweighs the data term: a VAE's KL "
                "summed over the batch while the reconstruction is averaged (or a KL weight far above 1), a penalty "
                "or weight decay on the wrong scale; otherwise for dead units or a gate stuck shut, and lower the "
                "learning rate if the collapse followed a loss spike.")


def conclude_constant_output(callback: "SanityCallback", trainer: "pl.Trainer", episodes: Episodes) -> None:
    """Report ``episodes`` of a constant output on the fixed batch under ``constant-output``, and set its row."""
    if not episodes.episodes:
        return
    lasting, cleared = episodes.lasting, episodes.cleared
    first = episodes.episodes[0]
    samples = first.info.get("samples")
    if cleared:
        spans = "; ".join(f"steps {e.first_step}-{e.last_step}, cleared at step {e.cleared_step}" for e in cleared)
        last = cleared[-1]
        bn = last.info.get("batchnorm") or []
        why = (f" while the running statistics of BatchNorm `{bn[0]['name']}` (momentum {bn[0]['momentum']:g}) still "
               f"held {bn[0]['initial_share']:.0%} of their initial 0/1" if bn else "")
        finding = callback.report(
            trainer, "constant-output", "info",
            f"The model gave {'about ' if 'spread' in last.info else ''}the same output for all {samples} samples of the fixed batch from step "
            f"{last.first_step}{why}, then the collapse cleared at step {last.cleared_step}: a transient eval-mode "
            "collapse, withdrawn.",
            "Nothing to do if validation metrics are fine; " + (batchnorm_advice(bn) if bn else _ADVICE),
            where=last.info.get("where"), key="transient",
            data={"samples": samples, "episodes": [[e.first_step, e.last_step, e.cleared_step] for e in cleared],
                  "cleared_step": last.cleared_step, "batchnorm": bn},
            batch_idx=last.batch_idx, global_step=last.first_step)
        finding.epoch = last.epoch
        callback.detail(trainer, "constant-output", f"constant output on the fixed batch at {spans} (withdrawn)")
    if lasting is None:
        return
    where = lasting.info.get("where")
    place = f"from `{where}` on" if where else "somewhere in the model"
    bn = lasting.info.get("batchnorm") or []
    advice = batchnorm_advice(bn) if bn else _ADVICE
    spread = lasting.info.get("spread")
    if spread is not None and not bn:
        advice = _NEAR_ADVICE
    text = (f"After {lasting.first_step} training steps the model gives the same output for all {samples} different "
            f"samples of the fixed batch, and still did at the last snapshot (step {lasting.last_step}): its output no "
            f"longer depends on its input ({place}).")
    if spread is not None:
        last = lasting.info.get("last_spread", spread["spread"])
        versus = (f" and {spread['target_spread']:.3g} for the targets" if spread.get("target_spread") else "")
        text = (f"From step {lasting.first_step} to the last snapshot (step {lasting.last_step}) the model's output "
                f"hardly depends on its input: its spread across the {samples} samples of the fixed batch fell to "
                f"{last:.3g}, against {spread['start_spread']:.3g} at the first snapshot{versus}, below 1/sqrt("
                f"{samples}) of it (the differences between samples are smaller than the standard error of their "
                "mean): the model gives about one output for every input.")
    finding = callback.report(
        trainer, "constant-output", "warning", text,
        advice, where=where, key="during-training",
        data={"samples": samples, "module": where, "first_step": lasting.first_step, "last_step": lasting.last_step,
              "batchnorm": bn, **({"spread": spread, "last_spread": lasting.info.get("last_spread", spread["spread"])}
                                  if spread is not None else {})},
        batch_idx=lasting.batch_idx, global_step=lasting.first_step)
    finding.epoch = lasting.epoch
    if spread is not None:
        callback.detail(trainer, "constant-output",
                        f"output spread across {samples} samples {spread['start_spread']:.3g} at the first snapshot -> "
                        f"{lasting.info.get('last_spread', spread['spread']):.3g} from step {lasting.first_step} to the "
                        f"last snapshot (step {lasting.last_step})")
        return
    callback.detail(trainer, "constant-output",
                    f"the same output for all {samples} samples of the fixed batch from step {lasting.first_step} to "
                    f"the last snapshot (step {lasting.last_step}), {place}")

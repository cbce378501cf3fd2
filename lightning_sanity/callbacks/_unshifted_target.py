"""``target-leakage`` for a call fed the batch's target as it must predict it: the outputs at positions up to ``t``
move when only the target from ``t`` on changes. A decoder given the target unshifted (Lightning's demo
Transformer), or shifted the wrong way inside ``forward`` (a "vectorised" ``shift_tokens_right`` that concatenates
on the left, so ``decoder_input_ids[t] = labels[t + 1]``), reads at each position the answer it is scored on. Teacher
forcing done right feeds ``labels[t - 1]`` at ``t``: the outputs up to ``t`` never move. Called by
:class:`~lightning_sanity.callbacks.leakage.LeakageChecks`; the target's own length is the one compared, which for
an encoder-decoder need not be the input's.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.callbacks._perturbed_call import PerturbedCall
from lightning_sanity.checks import leakage as L

CHECK = "target-leakage"


def check_unshifted_target(callback: Any, trainer: Any, call: dict[str, Any], when: str, probe: PerturbedCall,
                           y: torch.Tensor, axis: int) -> bool:
    """Change the target from the middle position on and compare the outputs up to it; report when they move.
    Whether a finding was reported."""
    length = int(y.shape[axis])
    t = (length - 1) // 2
    found = probe.change(y, t, axis, start_offset=0)
    callback._ran[CHECK].append(f"outputs at positions <= {t} independent of the target from {t} on")
    if found is None or not found.moved:
        return False
    callback._found.add(CHECK)
    callback.report(
        trainer, CHECK, "error",
        f"The output at position {found.position} changes (by up to {found.change:.3g}) when only the target at "
        f"positions {t} and after changes ({when}): `{call['how']}` is fed the batch's target unshifted, or shifted "
        "the wrong way, so the output at each position can read the answer it must predict.",
        L.DECODER_ADVICE, where=call["where"], key="decoder",
        data={"position": found.position, "perturbed_from": t, "length": length, "change": found.change,
              "when": when, "called_as": call["how"]},
    )
    return True

"""``target-leakage`` for a call fed the batch's target as it must predict it: the outputs at positions up to ``t``
move when only the target from ``t`` on changes. A decoder given the target unshifted (Lightning's demo
Transformer), or shifted the wrong way inside ``forward`` (a "vectorised" ``shift_tokens_right`` that concatenates
on the left, so ``decoder_input_ids[t] = labels[t + 1]``), reads at each position the answer it is scored on. Teacher
forcing done right feeds ``labels[t - 1]`` at ``t``: the outputs up to ``t`` never move. Called by
:class:`~lightning_sanity.callbacks.leakage.LeakageChecks`; the target's own length is the one compared, which for
an encoder-decoder need not be the input's. Before it, on the first look, :func:`check_answer_in_input`: an
encoder input that ends with the answer the decoder is fed (:mod:`lightning_sanity.checks.answer_suffix`).
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.callbacks._perturbed_call import PerturbedCall
from lightning_sanity.checks import leakage as L
from lightning_sanity.checks.answer_suffix import answer_suffix

CHECK = "target-leakage"


def check_unshifted_target(callback: Any, trainer: Any, call: dict[str, Any], when: str, probe: PerturbedCall,
                           y: torch.Tensor, axis: int) -> bool:
    """Change the target from the middle position on and compare the outputs up to it; report when they move.
    Whether a finding was reported."""
    if when == "fit start" and check_answer_in_input(callback, trainer, call, y):
        return True
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


def check_answer_in_input(callback: Any, trainer: Any, call: dict[str, Any], y: torch.Tensor) -> bool:
    """Report an encoder input that ends with each row's answer, when the model is also fed that answer (an
    encoder-decoder). Whether a finding was reported."""
    x, mask = call["x"], call["kwargs"].get("attention_mask")
    if not isinstance(x, torch.Tensor) or x.shape == y.shape:
        return False  # a decoder-only batch holds its answer at the end of the input by design
    found = answer_suffix(x, y, mask if isinstance(mask, torch.Tensor) else None)
    callback._ran[CHECK].append("the encoder input does not end with the answer")
    if found is None:
        return False
    rows, sep = found
    callback._found.add(CHECK)
    callback.report(
        trainer, CHECK, "error",
        f"Every one of the {rows} rows of the first training batch has an encoder input that ends with its own "
        f"answer, after token {sep} (`source [SEP] target`), while `{call['how']}` is also fed that answer for the "
        "decoder: the format of a decoder-only fine-tuning script. The decoder copies the answer through "
        "cross-attention, so training and validation losses are far too good, and at inference, where the encoder "
        "gets the source alone, the model fails.",
        "For an encoder-decoder, encode the source alone (`input_ids = source`) and pass the answer only as "
        "`labels` (the model shifts it right for the decoder).",
        where=call["where"], key="answer-in-input", data={"rows": rows, "separator": sep, "called_as": call["how"]},
    )
    return True

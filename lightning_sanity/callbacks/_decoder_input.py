"""``causal-leakage`` glue for encoder-decoder models trained with teacher forcing: the decoder is fed the target
shifted right by one (a start token, then ``target[:, :-1]``), built inside ``training_step``, so the call the
leakage checks observe holds the source and this decoder input, never the target itself.

The decoder input is recognised among the call's tensors as the batch's target shifted right by one
(:func:`lightning_sanity.checks.leakage.shift_axis`: ``decoder_input[:, t + 1] == target[:, t]``). The decoder's
own task is then next-element prediction on it, and the causal test applies: changing the decoder input after
position ``t`` (which holds the targets from ``t`` on) must leave the outputs up to ``t`` exactly unchanged. A
decoder whose self-attention has no causal ``tgt_mask`` reads the target it must predict. Called by
:class:`~lightning_sanity.callbacks.leakage.LeakageChecks` at its first look, under ``no_grad`` in eval mode.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.callbacks._perturbed_call import PerturbedCall
from lightning_sanity.checks import leakage as L

ADVICE = ("Give the decoder's self-attention a causal mask: `tgt_mask=nn.Transformer.generate_square_subsequent_mask"
          "(T)` (with `tgt_is_causal=True`) for `nn.Transformer` / `nn.TransformerDecoder`, `is_causal=True` for "
          "`scaled_dot_product_attention`; the encoder over the source may stay bidirectional. Keep feeding the target "
          "shifted right by one.")


def decoder_input_of(call: dict[str, Any], target: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The tensor among the call's arguments (not the input itself) that is ``target`` shifted right by one along
    dimension 1, or None."""
    if not isinstance(target, torch.Tensor) or target.dim() < 2:
        return None
    for value in (*call["args"], *call["kwargs"].values()):
        if isinstance(value, torch.Tensor) and value is not call["x"] and value is not target \
                and L.shift_axis(value, target) == 1:
            return value
    return None


def decoder_future(callback: Any, trainer: Any, call: dict[str, Any], when: str, probe: PerturbedCall) -> None:
    """Does the output at position ``t`` move when only the decoder input after ``t`` changes?"""
    check = "causal-leakage"
    decoder = decoder_input_of(call, call.get("target"))
    if decoder is None or not callback.is_enabled(check) or check in callback._found:
        return
    length = int(decoder.shape[1])
    t = (length - 1) // 2
    found = probe.change(decoder, t)
    if found is None:
        return
    callback._ran[check].append(f"decoder outputs at positions <= {t} of {length} independent of later decoder "
                                "inputs (the target shifted right)")
    if not found.moved:
        return
    callback._found.add(check)
    callback.report(
        trainer, check, "error",
        f"The output at position {found.position} changes (by up to {found.change:.3g} at output scale "
        f"{found.scale:.3g}) when only the decoder input after position {t} of {length} changes ({when}, "
        f"`{call['how']}`). That decoder input is the target shifted right by one, so position t + 1 holds target t: "
        "the decoder reads the very tokens it must predict, its teacher-forced loss means nothing, and it fails when "
        "generating one token at a time.",
        ADVICE, where=call["where"], key="decoder-future",
        data={"position": found.position, "perturbed_after": t, "length": length, "change": found.change,
              "scale": found.scale, "when": when, "called_as": call["how"]},
    )

"""``target-leakage`` glue for a decoder input that holds each label at an earlier position: teacher forcing with
the slices swapped (``dec_in = tgt[:, 1:]``, ``labels = tgt[:, :-1]``), so a causal decoder reads at ``k - 1`` the
token it must predict at ``k``. The judgement is :func:`lightning_sanity.checks.lagged_targets.earlier_copy`;
called by :class:`~lightning_sanity.callbacks.leakage.LeakageChecks`.

Two steps. At the end of the first training step (:func:`find_lagged_inputs`), the arguments of the observed model
call are scanned: an integer ``(B, T)`` argument beside the call's input (the encoder input), cut from the target
(it shares the storage of the tensor the loss's labels come from: the batch part the loss target is a view of, else
the batch's target), whose values ``s`` positions earlier equal the loss target at nearly every supervised position,
beyond chance. Requiring the decoder input to be cut from the target, next to another input, keeps a delayed-recall
task silent (``label[t] = x[t - 3]`` of its only input, or of a batch part the labels were not cut from). At the
first look (:func:`check_lagged_inputs`, under ``no_grad`` in eval mode), the model must read it there: the outputs
after position ``j`` move when only that input up to ``j`` changes (a right-to-left decoder, masked the other way,
does not, and is silent).
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.batch import tensors_of
from lightning_sanity.callbacks._model_call import storage_of
from lightning_sanity.callbacks._perturbed_call import PerturbedCall
from lightning_sanity.checks import lagged_targets as LT

CHECK = "target-leakage"
#: attribute of the callback holding a match from the first step's end until the first look.
_STATE = "_lagged_input"
ADVICE = ("Cut the decoder input and the labels from the target the right way round: `dec_in, labels = tgt[:, :-1], "
          "tgt[:, 1:]` (the decoder input is the target shifted right, behind the start token), so the label at each "
          "position is the next token, which the causal decoder has not read.")


def _label_source(batch: Any, target: torch.Tensor, y: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The batch tensor the loss target was cut from: the part it is a view of, else the batch's target (the step
    made the labels from it with a copy, `masked_fill` or `reshape`)."""
    ptr = storage_of(target)
    for part in tensors_of(batch):
        if ptr is not None and storage_of(part) == ptr:
            return part
    return y


def find_lagged_inputs(callback: Any, batch: Any, call: Optional[dict[str, Any]], targets: list[torch.Tensor],
                       task: Optional[str]) -> None:
    """At the first step's end: a call argument cut from the labels' tensor that holds them earlier."""
    setattr(callback, _STATE, None)
    if call is None or task not in ("sequence", "copied"):
        return
    x = call["x"]
    named = [*((f"argument {i}", v) for i, v in enumerate(call["args"])),
             *((f"`{k}`", v) for k, v in call["kwargs"].items())]
    for target in targets:
        if not isinstance(target, torch.Tensor) or target.is_floating_point() or target.dtype == torch.bool:
            continue
        source = _label_source(batch, target, call.get("target"))
        ptr = storage_of(source) if isinstance(source, torch.Tensor) else None
        if ptr is None or storage_of(x) == ptr:  # the input beside it is another tensor (the encoder input)
            continue
        for name, value in named:
            if (not isinstance(value, torch.Tensor) or value is x or value.dim() != 2
                    or value.shape[0] != x.shape[0] or value.numel() != target.numel() or storage_of(value) != ptr):
                continue
            found = LT.earlier_copy(target.detach().reshape(value.shape), value.detach())
            if found is not None:
                setattr(callback, _STATE, dict(found, name=name, input=value))
                return
            callback._ran[CHECK].append("no decoder input cut from the target holds the labels at earlier positions")


def check_lagged_inputs(callback: Any, trainer: Any, call: dict[str, Any], when: str, probe: PerturbedCall) -> None:
    """At the first look: do the outputs after ``j`` read the matched input up to ``j``? Report if so."""
    found = getattr(callback, _STATE, None)
    setattr(callback, _STATE, None)
    if found is None or not callback.is_enabled(CHECK) or CHECK in callback._found:
        return
    value = found["input"]
    if not any(v is value for v in (*call["args"], *call["kwargs"].values())):
        return
    j = (int(value.shape[1]) - 1) // 2
    moved = probe.change(value, j, before=True)
    if moved is None:
        return
    if not moved.moved:
        callback._ran[CHECK].append(f"{found['name']} of `{call['how']}` holds the labels {found['shift']} "
                                    "position(s) earlier, but the outputs never read it there")
        return
    callback._found.add(CHECK)
    shift = found["shift"]
    callback.report(
        trainer, CHECK, "error",
        f"At {found['share']:.0%} of the {found['positions']} supervised positions of the first training batch, the "
        f"label at position k is the value of {found['name']} of `{call['how']}` at position k - {shift} (chance "
        f"{found['chance']:.1%}), and the outputs after position {j} change when only that input up to {j} changes "
        f"({when}). That input is cut from the target and shifted the wrong way (teacher forcing with the slices "
        "swapped: `dec_in = tgt[:, 1:]`, `labels = tgt[:, :-1]`): the model reads each token it must predict, its "
        "teacher-forced loss and accuracy mean nothing, and it fails when generating one token at a time.",
        ADVICE, where=call["where"], key="lagged-labels",
        data={"input": found["name"], "shift": shift, "share": found["share"], "chance": found["chance"],
              "positions": found["positions"], "log10_chance": found["log10_chance"], "perturbed_up_to": j,
              "position": moved.position if moved.position >= 0 else None, "when": when, "called_as": call["how"]},
    )

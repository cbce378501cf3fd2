"""``target-leakage`` for a model call handed the target of one of the step's losses from which another head's label
is derived: a defect U-Net called as ``self(image, mask)`` whose segmentation loss compares its map with ``mask``
while its "defective?" head, scored against ``mask.any()``, pools its features over that ``mask``: an empty mask
gives the answer away, in validation too.

The general form of :mod:`._label_argument` (a head given its own label): a tensor passed to the observed model
call (not the input) is the target of a loss call of the first step (the tensor itself, or equal to it), and another
loss call of that step scores a per-sample output (``(N,)`` or ``(N, C)`` scores, ``(N,)`` targets) against a label
that is one function of that tensor's rows, beyond chance (:func:`lightning_sanity.checks.target_inputs.determined`
on the batch's distinct samples: samples given equal tensors share their label). The derivation alone proves
nothing; the test is behavioural, at :class:`~lightning_sanity.callbacks.leakage.LeakageChecks`' second look, on up
to 64 kept samples (``no_grad``, eval mode, isolated RNG, draws from its generator): each sample is given the tensor
of another sample whose label differs, and the head's loss against *that* sample's label is compared before and
after. A head that reads only the input does not move; one that reads its answer from the tensor moves towards the
other sample's label, in more samples than not beyond a sign test at 1e-3.

Silent by construction: a conditional model whose condition is an input and no loss's target (a cGAN, a conditional
VAE, mask-conditioned inpainting), teacher forcing (the decoder input is the shifted target; with the labels passed
and the loss computed inside the model there is no other head), a hierarchical model fed the gold coarse group (the
fine label is no function of the group), a semi-supervised VAE (its decoder's label is the classifier's own target,
and the reconstruction's target is the input).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

import torch
import torch.nn.functional as F

from lightning_sanity.batch import map_tensors, tensors_of
from lightning_sanity.callbacks._extra_forward import reading_probe
# The same sample count and sign-test level as the label-argument test: one notion of "beyond chance".
from lightning_sanity.callbacks._label_argument import CHANCE, KEEP, sign_tail
from lightning_sanity.callbacks._model_call import keep_call, move_call, run_call
from lightning_sanity.checks import losses as LS
from lightning_sanity.checks.target_inputs import determined
from lightning_sanity.replays.rng import isolate_rng

log = logging.getLogger(__name__)
CHECK = "target-leakage"
#: Changes of a per-sample loss below this share of its scale are float round-off (float32; half precision: the
#: second), as in :mod:`._label_argument`.
ROUND_OFF, ROUND_OFF_HALF = 1e-4, 2e-2
#: Kinds of the heads whose label may be derived: a per-sample class, flag or value.
HEAD_KINDS = LS.CLASSIFICATION + LS.BINARY + LS.REGRESSION
ADVICE = ("Give the model only what is known at prediction time: a tensor that one head is trained to predict (the "
          "ground-truth mask) must not feed another head whose label is computed from it (pool the classifier with "
          "the predicted mask, `sigmoid(seg_logits)`, or with learned attention), in training and validation alike.")


#: Values of a sample's tensor compared when grouping samples: two equal on this many leading values are taken for one
#: (a full-size image would cost more than the rest of the fit-start checks).
SAMPLE_VALUES = 16384


def _rows(t: torch.Tensor, n: int) -> torch.Tensor:
    return t.detach().reshape(n, -1)[:, :SAMPLE_VALUES].double().cpu()


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a is b or (a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b)))


def _pairs(call: dict[str, Any], heads: list[tuple[str, tuple, torch.Tensor]]) -> list[tuple[int, int]]:
    """``(argument index, head index)``: an argument of ``call`` (not the input) that is a loss target, and another
    head that scores a per-sample output against a per-sample label."""
    x = call["x"]
    n = int(x.shape[0])
    pairs = []
    for i, arg in enumerate(tensors_of((call["args"], call["kwargs"]))):
        if arg.dim() == 0 or arg.shape[0] != n or arg.is_complex() or _same(arg, x):
            continue
        own = [k for k, (_, _, t) in enumerate(heads) if _same(t, arg)]
        for k, (kind, shape, label) in enumerate(heads):
            if not own or k in own or kind not in HEAD_KINDS or label.numel() != n or label.is_complex():
                continue
            if label.shape[0] != n or kind in LS.CLASSIFICATION and (len(shape) != 2 or label.is_floating_point()):
                continue
            if kind in LS.CLASSIFICATION or math.prod(shape) == n:
                pairs.append((i, k))
    return pairs


def _derived_heads(call: dict[str, Any], heads: list[tuple[str, tuple, torch.Tensor]]
                   ) -> Optional[tuple[int, int, tuple, float]]:
    """``(argument index, head index, head input shape, log10 chance)`` of the first pair of :func:`_pairs` whose
    head's label is one function of the argument's rows beyond chance (over all the pairs tried), else None."""
    x, pairs = call["x"], _pairs(call, heads)
    n, passed = int(call["x"].shape[0]), tensors_of((call["args"], call["kwargs"]))
    for i, k in pairs:
        keys, values = _rows(passed[i], n), heads[k][2].detach().reshape(n).double().cpu()
        distinct = torch.unique(torch.cat([_rows(x, n), keys, values[:, None]], 1), dim=0,
                                return_inverse=True)[1]  # repeated samples prove nothing
        first = torch.full((int(distinct.max()) + 1,), n).scatter_reduce(0, distinct, torch.arange(n), "amin")
        found, log10 = determined(keys[first], values[first], tests=len(pairs))
        if found:
            return i, k, heads[k][1], log10
    return None


def keep_target_argument(call: Optional[dict[str, Any]], heads: list[tuple[str, tuple, torch.Tensor]]
                         ) -> Optional[dict[str, Any]]:
    """A kept copy of ``call`` marked with the argument that is a loss target and the head whose label derives from
    it, for :func:`look_target_argument`; else None."""
    if call is None or not isinstance(call.get("x"), torch.Tensor) or call["x"].dim() == 0 or len(heads) < 2:
        return None
    try:
        found = _derived_heads(call, heads)
    except Exception:  # a check must never lose the user's run
        log.debug("target-argument scan failed", exc_info=True)
        return None
    if found is None:
        return None
    arg, head, shape, log10 = found
    kind, _, label = heads[head]
    return dict(keep_call(call, KEEP), arg=arg, kind=kind, width=shape[1] if kind in LS.CLASSIFICATION else None,
                label=label.detach().reshape(-1)[:KEEP].cpu(), log10_chance=log10)


def _loss(kind: str, out: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """The head's per-sample loss against ``label``, without weights (a positive per-sample scale keeps the sign of a
    change)."""
    out = out.float()
    if kind in LS.CLASSIFICATION:
        return F.cross_entropy(out, label.long(), reduction="none")  # log_softmax leaves log-probabilities as they are
    out = out.reshape(-1)
    if kind == "binary_cross_entropy_with_logits":
        return F.binary_cross_entropy_with_logits(out, label.float(), reduction="none")
    if kind == "binary_cross_entropy":
        return F.binary_cross_entropy(out.clamp(1e-6, 1 - 1e-6), label.float(), reduction="none")
    return (out - label.float()).abs()


def _partners(label: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """For each sample, a random other sample with a different label (itself when there is none)."""
    n = int(label.shape[0])
    other = label[None, :] != label[:, None]
    draw = torch.rand(n, n, generator=generator) * other  # zero where the label is the same
    return torch.where(other.any(1), draw.argmax(1), torch.arange(n))


def look_target_argument(callback: Any, trainer: Any, pl_module: Any, kept: Optional[dict[str, Any]], when: str
                         ) -> None:
    """Run the test on the kept call (in eval mode, under ``no_grad`` and an isolated RNG) and report; returns None
    (the kept call is used once)."""
    if kept is None or not callback.is_enabled(CHECK) or CHECK in callback._found:
        return
    try:
        call = move_call(kept, pl_module.device)
        with isolate_rng(), reading_probe(pl_module, trainer):
            _test(callback, trainer, call, kept, when)
    except Exception as err:  # a check must never lose the user's run
        log.debug("target-argument test failed", exc_info=True)
        callback._ran[CHECK].append(f"could not test the loss target given to the model: {err!r}")


def _test(callback: Any, trainer: Any, call: dict[str, Any], kept: dict[str, Any], when: str) -> None:
    args, kwargs = call["args"], call["kwargs"]
    old = tensors_of((args, kwargs))[kept["arg"]]
    label = kept["label"]
    n = int(label.shape[0])
    partner = _partners(label, callback._generator)
    swapped = partner != torch.arange(n)
    if int(swapped.sum()) < 2 or old.shape[0] != n:
        return
    new_arg = old[partner.to(old.device)]
    new_label = label[partner].to(old.device)
    base = run_call(call, args, kwargs)
    moved = run_call(call, *map_tensors((args, kwargs), lambda v: new_arg if v is old else v))
    per_sample = kept["width"] or 1
    pairs = [(a, b) for a, b in zip(tensors_of(base), tensors_of(moved)) if a.is_floating_point()
             and a.shape == b.shape and a.dim() >= 1 and a.shape[0] == n and a.numel() == n * per_sample]
    callback._ran[CHECK].append(f"the heads do not read the loss target given to `{call['how']}`")
    for before, after in pairs:
        shape = (n, per_sample) if kept["width"] else (n,)
        loss0, loss1 = (_loss(kept["kind"], t.reshape(shape), new_label) for t in (before, after))
        scale = float(loss0.abs().median()) if kept["kind"] in LS.REGRESSION else 1.0
        tol = (ROUND_OFF_HALF if before.dtype in (torch.float16, torch.bfloat16) else ROUND_OFF) * max(scale, 1e-12)
        delta = (loss1 - loss0)[swapped.to(loss0.device)]
        towards, away = int((delta < -tol).sum()), int((delta > tol).sum())
        if towards <= away or sign_tail(towards, away) * len(pairs) >= CHANCE:
            continue
        callback._found.add(CHECK)
        callback.report(
            trainer, CHECK, "error",
            f"`{call['how']}` is given the target of one of its losses (argument {kept['arg']}), and the label of "
            f"another head ({kept['kind']}) is one function of it on the first training batch (chance below "
            f"1e{kept['log10_chance']:.0f}): with each of {int(swapped.sum())} kept samples given the argument of a "
            f"sample with another label ({when}), that head's loss against the other sample's label falls in "
            f"{towards} samples and rises in {away}. The head reads its answer from the ground truth it is handed, so "
            "its training and validation scores mean nothing where that target is unknown.",
            ADVICE, where=call["where"], key="target-argument",
            data={"argument": kept["arg"], "head": kept["kind"], "towards": towards, "away": away,
                  "samples": int(swapped.sum()), "log10_chance": kept["log10_chance"], "when": when,
                  "called_as": call["how"]},
        )
        return

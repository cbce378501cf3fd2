"""``target-leakage`` glue for another input of the batch that holds the label (a collate that fills ``pos_ids`` from
the NER tags): the judgement is :func:`lightning_sanity.checks.label_copies.label_copies`; called by
:class:`~lightning_sanity.callbacks.leakage.LeakageChecks` on the first training batch.

Two steps. At the first batch's start, the batch's tensors other than the input and the target (dict keys not named
like a mask, label, target or weight; tuple parts) are matched against the target. Only when one matches beyond
chance, forward pre-hooks watch that one training step for a module call that receives it (the tensor itself or a
cast of it) without the target: the model reads it. A tensor that never reaches a module (a per-sample loss weight
from class weights, kept for the loss) cannot leak and is not reported. The hooks only compare tensors; they are
removed with :class:`~lightning_sanity.callbacks.leakage.LeakageChecks`' own at the first batch's end, where
:func:`finish_label_copies` reports. The other parts of a tuple batch are tried as the target too (``(past, future,
y)``); such a match is reported only when the step's loss compared with that part.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from lightning_sanity.callbacks._compiled import hookable_modules
from lightning_sanity.batch import tensors_of
from lightning_sanity.checks import label_copies as C
from lightning_sanity.checks import target_inputs as T

log = logging.getLogger(__name__)
CHECK = "target-leakage"
ADVICE = ("Build every input field of the batch from the input alone: a collate that fills a feature from the label "
          "field (`pos_ids` from `ex[\"ner_tags\"]` instead of `ex[\"pos_tags\"]`) hands the model the answer, in "
          "training and validation alike, and the model fails where the field is computed honestly. In a forecaster, "
          "the known-future covariates must not include the target series itself.")
UNEXPLAINED_ADVICE = (" A lexicon feature (a gazetteer, a tag dictionary) must come from an external list or "
                      "from the training split's tags only, built after the split: one collected from every tagged "
                      "word of the corpus flags each word with its own gold type.")
#: attribute of the callback holding the matches waiting for the end of the first step.
_STATE = "_label_copy_state"


def candidates(batch: Any, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """The batch's tensors that may be model inputs other than ``x``, by name: dict keys that name a feature, or the
    parts of a tuple batch."""
    if isinstance(batch, Mapping):
        items = [(f"batch[{k!r}]", v) for k, v in batch.items() if T.is_feature_key(k)]
    elif isinstance(batch, (tuple, list)):
        items = [(f"batch[{i}]", v) for i, v in enumerate(batch)]
    else:
        return {}
    return {name: v for name, v in items if isinstance(v, torch.Tensor) and v is not x and v is not y
            and not (v.shape == x.shape and v.dtype == x.dtype and torch.equal(v, x))}


def start_label_copies(callback: Any, trainer: Any, pl_module: nn.Module, batch: Any, x: torch.Tensor,
                       y: torch.Tensor) -> None:
    """Match the batch's other tensors against the target; watch the step for the model reading a match.

    A tuple batch ``(past, future, y)`` has its target last, not second: every other part is tried as the target
    too, and kept at the end only when the step's loss compared with it (:func:`finish_label_copies`)."""
    try:
        found: list[tuple[C.LabelCopy, torch.Tensor, bool]] = []
        watched: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for target, default in _targets(batch, x, y):
            others = candidates(batch, x, target)
            for copy in C.label_copies(target, others, x):
                found.append((copy, target, default))
                watched.setdefault(copy.name, (others[copy.name], target))
        if not found:
            callback._ran[CHECK].append("no other tensor of the batch holds the label")
            return
        read: set[str] = set()
        setattr(callback, _STATE, {"found": found, "read": read})
        callback._handles.extend(_watch_reads(pl_module, watched, read))
    except Exception as err:  # a check must never lose the user's run, nor the other leakage tests
        log.debug("label-copy scan failed", exc_info=True)
        callback._ran[CHECK].append(f"could not match the batch's other tensors with the target: {err!r}")


def _targets(batch: Any, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, bool]]:
    """``(tensor, is the default target)``: ``y``, then the other parts of a tuple batch (not ``x``)."""
    parts = [p for p in batch if isinstance(p, torch.Tensor)] if isinstance(batch, (tuple, list)) else []
    return [(y, True)] + [(p, False) for p in parts if p is not x and p is not y]


def finish_label_copies(callback: Any, trainer: Any) -> None:
    """Report the matches the model read during the first step (the hooks are already removed)."""
    state = getattr(callback, _STATE, None)
    if state is None:
        return
    setattr(callback, _STATE, None)
    losses = getattr(callback, "_targets", [])
    read = [c for c, target, default in state["found"] if c.name in state["read"]
            and (default or any(_is_part(t, target) for t in losses))]
    if not read:
        names = ", ".join(dict.fromkeys(f"`{c.name}`" for c, _, default in state["found"] if default))
        if not names:
            callback._ran[CHECK].append("no other tensor of the batch holds the label")
            return
        callback._ran[CHECK].append(f"{names} holds the label but no module of the model was given it")
        return
    callback._found.add(CHECK)
    first = read[0]
    column = f" (feature {first.column})" if first.column is not None else ""
    if first.span is not None:  # a window of a longer sequence: a decoder input's horizon placeholder
        feature = f", feature {first.column}" if first.column is not None else ""
        column = f" (positions {first.span[0]} to {first.span[1]} along its axis 1{feature})"
    words = ("equals the target" if first.how in ("equal", "equal values")
             else "takes one distinct value per class of the target (the labels relabelled)")
    counted = f"{first.classes} distinct values" if first.how == "equal values" else f"{first.classes} classes"
    where = f"all {first.rows} supervised positions of distinct samples"
    if first.how == "unexplained":  # the whole per-token vector, where the input token does not fix it
        words = "takes one distinct value per class of the target"
        where = f"every one of the {first.rows} supervised positions whose input token does not fix its value"
    callback.report(
        trainer, CHECK, "error",
        f"The batch's `{first.name}`{column} {words} at {where} in "
        f"the first training batch ({counted}; chance below 1e{first.log10_chance:.0f}), and the model "
        "is given it: an input field was filled from the label, so the model reads the answer and validation on "
        "data built the same way says nothing about it.",
        ADVICE + (UNEXPLAINED_ADVICE if first.how == "unexplained" else ""), where=first.name, key="label-copy",
        data={"tensors": list(dict.fromkeys(c.name for c in read)), "how": first.how, "column": first.column,
              **({"positions": list(first.span)} if first.span is not None else {}),
              "rows": first.rows, "classes": first.classes, "log10_chance": first.log10_chance},
    )


def _watch_reads(model: nn.Module, watched: dict[str, tuple[torch.Tensor, torch.Tensor]], read: set[str]
                 ) -> list[Any]:
    """Pre-hooks marking in ``read`` each tensor given to a module call (itself, or an equal cast) without its
    target (name to ``(tensor, target)``)."""

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        passed = tensors_of((args, kwargs))
        for name, (c, y) in watched.items():
            # a call given the target too is the loss, or a wrapper handed the whole batch: not where inputs are read
            if name not in read and not any(t is y for t in passed) and any(
                    t is c or _same_values(t, c) for t in passed):
                read.add(name)

    return [m.register_forward_pre_hook(hook, with_kwargs=True) for _, m in hookable_modules(model)]


def _is_part(loss_target: torch.Tensor, part: torch.Tensor) -> bool:
    """The loss compared with this batch part (itself, a view of it, or an equal copy)."""
    if loss_target is part:
        return True
    return loss_target.numel() == part.numel() and _same_values(loss_target.reshape(-1), part.reshape(-1))


def _same_values(t: torch.Tensor, c: torch.Tensor) -> bool:
    return t.shape == c.shape and not t.is_complex() and bool(torch.equal(t.detach().double(), c.detach().double()))

"""What the first training step compares its output with, for :class:`~lightning_sanity.callbacks.leakage.LeakageChecks`.

The batch alone does not always say what the model must predict: a batch of one series, cut in ``training_step``
into ``x[:, :-1]`` for the model and ``x[:, 1:]`` for the loss (a next-element task made in the step), or a batch
``(x_cat, x_num, y)`` whose second part is an input, not the target. A :class:`LossTargets` watch (a
:class:`~lightning_sanity.callbacks._step_watch.StepWatch`, first step only) records the targets of the recognised
loss calls (:func:`lightning_sanity.checks.losses.loss_kind`); :func:`step_axis` and :func:`batch_labels` read them.

Example::

    >>> import torch, torch.nn.functional as F
    >>> seq = torch.randn(4, 9)
    >>> watch = LossTargets().start()
    >>> _ = F.mse_loss(seq[:, :-1] * 2, seq[:, 1:])
    >>> targets = watch.stop()
    >>> step_axis({"x": seq[:, :-1]}, targets)
    1
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch

from lightning_sanity.callbacks._model_call import storage_of
from lightning_sanity.callbacks._step_watch import StepWatch, function_name
from lightning_sanity.checks import leakage as L
from lightning_sanity.checks import losses as LS

#: loss calls recorded at most (a step with more is a multi-loss model; its first calls are the main ones).
_MAX_CALLS = 8


class LossTargets:
    """Records the targets of the recognised loss calls of one step (never changes a call)."""

    def __init__(self) -> None:
        self.targets: list[torch.Tensor] = []
        self.classes: list[tuple[torch.Tensor, int]] = []  # (class target, the scores' width) of each loss call
        self.heads: list[tuple[str, tuple[int, ...], torch.Tensor]] = []  # (kind, input shape, target) of each call
        self._sources: dict[int, torch.Tensor] = {}
        self._slices: list[tuple[torch.Tensor, Any]] = []
        self._watch: Optional[StepWatch] = None

    def start(self, sources: tuple = ()) -> "LossTargets":
        """Watch the step; ``sources`` are batch tensors whose slices (``seq[:, 1:]``) are recorded too."""
        self.classes, self.heads, self._slices = [], [], []
        self._sources = {id(s): s for s in sources if isinstance(s, torch.Tensor)}
        self._watch = StepWatch(before=self._before).start()
        return self

    def sliced(self) -> list[torch.Tensor]:
        """The slices the last watched step cut from ``sources`` (once: the batch is let go): what a loss the watch
        does not recognise (a pinball loss on ``seq[:, 1:]``) may compare with."""
        slices, self._slices = self._slices, []
        out = []
        for source, index in slices:
            try:
                out.append(source[index])
            except Exception:  # an index that only made sense inside the step: not a target to compare with
                continue
        return out

    def _before(self, func: Any, args: tuple, kwargs: dict) -> None:
        if (len(args) == 2 and id(args[0]) in self._sources and len(self._slices) < _MAX_CALLS
                and function_name(func) == "__getitem__"):
            self._slices.append((args[0], args[1]))
        if len(self.targets) >= _MAX_CALLS or LS.loss_kind(func) is None:
            return
        call = LS.bind_loss_call(func, args, kwargs)
        if call is not None:
            self.targets.append(call.target)
            self.heads.append((call.kind, tuple(call.input.shape), call.target))
            if call.input.dim() == 2 and call.target.dim() == 1 and not call.target.is_floating_point():
                self.classes.append((call.target, int(call.input.shape[1])))

    def stop(self) -> list[torch.Tensor]:
        """Remove the watch (idempotent) and hand over the targets seen."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        self._sources = {}
        targets, self.targets = self.targets, []
        return targets


def step_axis(call: Optional[dict[str, Any]], targets: list[torch.Tensor]) -> Optional[int]:
    """The time axis when a loss target is the recorded model input shifted by one (a next-element task made in
    ``training_step``), else None. When found, the call's ``"y"`` is forgotten: the target is the input shifted, so
    another batch part the call gets (document ids of packed rows, a mask) is not the target."""
    if call is None or not isinstance(call.get("x"), torch.Tensor):
        return None
    for target in targets:
        axis = L.step_shift_axis(call["x"], target)
        if axis is not None:
            call["y"] = None
            return axis
    return None


def retarget_call(call: dict[str, Any], batch: Any, targets: list[torch.Tensor]) -> None:
    """Correct the observed model ``call``'s batch target by the first step's loss: when every recorded loss target
    is (a view of) one batch part other than the target taken at the start (a tuple batch's second part: an input
    in a tagger's ``(ids, features, tags)`` or a seq2seq ``(src, dec_in, tgt)``), that part becomes ``"target"``, and
    ``"y"`` (the target as the call receives it) that part if the call receives it, else None. A loss target copied
    from a part (``tgt[valid]``) counts as that part (:func:`_source_part`). Unchanged when a loss target is the
    first target or made from it, comes from no part it can name, or no loss call was recognised."""
    first = call.get("target")
    if not isinstance(first, torch.Tensor) or not targets:
        return
    parts = _parts(batch)
    compared = [_source_part(t, parts, first) for t in targets]
    if any(p is None or p is first for p in compared):
        return
    given = [v for v in (*call["args"], *call["kwargs"].values()) if v is not call.get("x")]
    call["target"] = compared[0]
    call["y"] = next((p for p in compared if any(p is v for v in given)), None)


def _source_part(target: torch.Tensor, parts: list[torch.Tensor], first: torch.Tensor) -> Optional[torch.Tensor]:
    """The batch part a loss target was made from: the part or a view of it; else the part whose values it copies,
    whole (a cast, a clone) or at a mask the batch carries (``y[valid]``: a masked Gaussian NLL). ``first`` when it
    is among several such parts, None when none or several others are (unknown: the caller keeps ``first``)."""
    view = next((p for p in parts if p is target or _same_storage(p, target)), None)
    if view is not None:
        return view
    masks = [m for p in parts if p.dtype == torch.bool for m in (p, ~p)]
    found = [p for p in parts if p.dtype != torch.bool and _copies(target, p, masks)]
    if any(p is first for p in found):
        return first
    return found[0] if len(found) == 1 else None


def _copies(target: torch.Tensor, part: torch.Tensor, masks: list[torch.Tensor]) -> bool:
    """Whether ``target`` holds exactly ``part``'s values, in order, all of them or those at one of ``masks``. A
    constant target (the real labels of a GAN, zeros) tells nothing about where it came from."""
    try:
        flat = target.detach().reshape(-1).double()
        if flat.numel() < 2 or not bool((flat != flat[0]).any()):
            return False
        if part.numel() == flat.numel():
            return torch.equal(part.detach().reshape(-1).double(), flat)
        return any(m.shape == part.shape and int(m.sum()) == flat.numel()
                   and torch.equal(part.detach()[m].double(), flat) for m in masks)
    except (RuntimeError, TypeError):  # another device, a dtype without a double view
        return False


def _parts(batch: Any) -> list[torch.Tensor]:
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        return [p for p in batch if isinstance(p, torch.Tensor)]
    return [batch] if isinstance(batch, torch.Tensor) else []


def batch_labels(batch: Any, targets: list[torch.Tensor], fallback: Optional[torch.Tensor]) -> list[Any]:
    """The batch parts of one value per sample (``(N,)`` or ``(N, 1)``) the step's losses compare with (each itself,
    a view of it, or else its values cast: ``y.float()`` for a BCE on integer labels), in the order of the loss
    calls: every head of a multi-task model has its own label, and a feature column may give any of them away.
    ``[fallback]`` when none is."""
    parts = [p for p in _parts(batch) if p.dim() == 1 or (p.dim() == 2 and p.shape[1] == 1)]
    found: list[torch.Tensor] = []
    for target in targets:
        views = [p for p in parts if target is p or (target.numel() == p.numel() and _same_storage(target, p))]
        # A copy names its part only when exactly one part holds its values (two equal labels: unknown).
        copies = [p for p in parts if _copies(target, p, [])] if not views else []
        part = views[0] if views else copies[0] if len(copies) == 1 else None
        if part is not None and not any(part is f for f in found):
            found.append(part)
    return found or [fallback]


def feature_parts(batch: Any, x: Any, label: torch.Tensor, call: Optional[dict[str, Any]]) -> list[torch.Tensor]:
    """The ``(N, F)`` inputs to scan for the label: ``x``, and the batch's other parts the observed model ``call``
    is given (``self(x_cat, x_num)``; a part the model never sees, such as a one-hot copy of the label for a soft
    loss, leaks nothing). Integer-coded parts only for a regression label: a token sequence whose class is one of
    its tokens is a synthetic classification task by design, and reads like an integer column equal to the label."""
    rows = int(label.shape[0]) if label.dim() else -1
    given = [v for v in (*call["args"], *call["kwargs"].values())] if call is not None else []
    candidates = [x, *(p for p in _parts(batch) if any(p is v for v in given))]
    regression = label.is_floating_point() and not bool((label == label.round()).all())
    seen: list[torch.Tensor] = []
    for p in candidates:
        if (not isinstance(p, torch.Tensor) or p is label or p.dim() != 2 or int(p.shape[0]) != rows
                or p.is_complex() or not (p.is_floating_point() or regression) or any(p is q for q in seen)):
            continue
        seen.append(p)
    return seen


def _same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    storage = storage_of(a)
    return storage is not None and storage == storage_of(b)

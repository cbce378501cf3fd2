"""``target-leakage`` for a model call handed the label its own output is scored against: ``self(x, one_hot(y))``
(a conditional-VAE encoder) while a head's cross-entropy compares an output with ``y``. The label argument alone
proves nothing (a conditional decoder, a margin head, a semi-supervised VAE whose classifier reads ``x`` only), so
the test is behavioural: after some training, on the kept samples, the argument is replaced by other labels and the
scores the loss compares with ``y`` are read against those new labels. A head that reads only the input keeps its
predictions, which hit a label drawn among the *other* classes at most ``1 / (C - 1)`` of the time; one that
follows the new labels beyond that binomial bound reads its answer from the argument.

Per-position labels (a frame or token tagger scored by ``cross_entropy(logits.flatten(0, 1), labels.flatten())``,
handed ``labels`` itself where the previous labels were meant) are tested the same way at every position that has a
label; the scores must also pick the new label at most positions (:func:`follows_labels`): a decoder that shifts the
labels it is given (HF seq2seq models build their decoder input from ``labels``) follows the previous position's new
label, not this one's.

Found after the first step (:func:`keep_label_argument`, from the call the leakage hooks observed and the loss
targets the step recorded); tested at :class:`~lightning_sanity.callbacks.leakage.LeakageChecks`' second look
(:func:`check_label_argument`), under its ``no_grad``, eval mode and isolated RNG, drawing from its generator.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional

import torch

from lightning_sanity.batch import map_tensors, tensors_of
from lightning_sanity.callbacks._extra_forward import reading_probe
from lightning_sanity.callbacks._model_call import keep_call, move_call, run_call
from lightning_sanity.checks import leakage as L
from lightning_sanity.replays.rng import isolate_rng

log = logging.getLogger(__name__)

CHECK = "target-leakage"
#: samples kept for the test: the binomial bound needs a few dozen.
KEEP = 64
#: A sign test's level for "the scores move towards the new labels" (a permutation test's, as elsewhere in leakage).
CHANCE = 1e-3
#: Changes of a log-probability below this are float round-off (float32; half precision: the second).
ROUND_OFF, ROUND_OFF_HALF = 1e-4, 2e-2
ADVICE = ("Give the model only what is known at prediction time: an encoder conditioned on the label "
          "(`enc(cat([x, one_hot(y)]))`) must not feed a head that predicts that label; classify from an encoder "
          "that reads `x` alone (as a semi-supervised VAE does), and condition the decoder only.")


def _label_form(arg: torch.Tensor, y: torch.Tensor, classes: int) -> Optional[str]:
    """``"index"`` when ``arg`` is the labels ``y``, ``"onehot"`` when it is their one-hot over ``classes``."""
    if arg.shape == y.shape and not arg.is_floating_point() and torch.equal(arg.long(), y.long()):
        return "index"
    if arg.shape == (*y.shape, classes) and bool((y >= 0).all()) and int(y.max()) < classes:
        if torch.equal(arg.float(), torch.nn.functional.one_hot(y.long(), classes).to(arg.device).float()):
            return "onehot"
    return None


def keep_label_argument(call: Optional[dict[str, Any]], classes: list[tuple[torch.Tensor, int]]
                        ) -> Optional[dict[str, Any]]:
    """A kept copy of ``call`` marked with its label argument, when one of its tensors (not the input) is the
    class target of a loss call of the step, as labels or one-hot; else None."""
    if call is None:
        return None
    passed = tensors_of((call["args"], call["kwargs"]))
    size = int(call["x"].shape[0]) if call["x"].dim() else 0
    for target, width in classes:
        if target.dim() != 1 or not size or target.shape[0] % size or width < 3:
            continue
        # One label per sample, or one per position of each sample (the flattened targets of a tagger).
        target = target if target.shape[0] == size else target.view(size, -1)
        for i, arg in enumerate(passed):
            form = None if arg is call["x"] else _label_form(arg, target, width)
            if form is not None:
                kept = keep_call(call, KEEP)
                return dict(kept, label_arg=i, label_form=form, label=target[:KEEP].detach().cpu().long(),
                            classes=width)
    return None


def check_label_argument(callback: Any, trainer: Any, call: dict[str, Any], when: str) -> None:
    """Replace the label argument by other labels; report when the scored output follows them."""
    args, kwargs = call["args"], call["kwargs"]
    old = tensors_of((args, kwargs))[call["label_arg"]]
    label, classes = call["label"].to(old.device), call["classes"]
    shift = torch.randint(1, classes, label.shape, generator=callback._generator).to(label.device)
    new = torch.where(label >= 0, (label + shift) % classes, label)  # every label another; ignored ones kept
    value = new if call["label_form"] == "index" else torch.nn.functional.one_hot(new, classes)
    value = value.to(old.dtype)
    base = run_call(call, args, kwargs)
    moved = run_call(call, *map_tensors((args, kwargs), lambda v: value if v is old else v))
    n, shape = int(label.shape[0]), (*label.shape, classes)
    pairs = [(a, b) for a, b in zip(tensors_of(base), tensors_of(moved))
             if a.is_floating_point() and a.shape == shape and b.shape == a.shape]
    callback._ran[CHECK].append(f"the scores do not follow the label given to `{call['how']}`")
    valid = (label >= 0).reshape(-1)
    for before, moved_scores in pairs:
        before, after = before.reshape(-1, classes)[valid], moved_scores.reshape(-1, classes)[valid]
        wanted = new.reshape(-1)[valid]
        towards, away = toward_new_labels(before, after, wanted)
        if not towards:
            continue
        hit = float((after.argmax(1) == wanted).float().mean())
        if label.dim() > 1 and not follows_labels(moved_scores.argmax(-1), new):
            continue
        unit = "positions" if label.dim() > 1 else "samples"
        callback._found.add(CHECK)
        callback.report(
            trainer, CHECK, "error",
            f"`{call['how']}` is given the label its loss scores it against (as {call['label_form']}), and it reads "
            f"it: with that argument replaced by other labels on {n} kept samples ({when}), the log-probability of "
            f"the new label rises in {towards} {unit} and falls in {away}, and the scores pick it for {hit:.0%} of "
            "them (a head that reads only the input does not move at all). The classifier copies its answer, so "
            "its training and validation accuracy mean nothing where the label is unknown.",
            ADVICE, where=call["where"], key="label-argument",
            data={"towards": towards, "away": away, "accuracy_new": hit, "samples": n,
                  "form": call["label_form"], "when": when, "called_as": call["how"]},
        )
        return


def look_sequence_labels(callback: Any, trainer: Any, pl_module: Any, call: Optional[dict[str, Any]],
                         when: str) -> None:
    """The second look for a sequence task's call given its own per-position labels (kept beside the sequence
    task's tests); returns None, what the callback keeps next."""
    if call is None or not callback.is_enabled(CHECK) or CHECK in callback._found:
        return None
    try:
        with isolate_rng(), reading_probe(pl_module, trainer):
            check_label_argument(callback, trainer, move_call(call, pl_module.device), when)
    except Exception:  # a check must never lose the user's run
        log.debug("label-argument test failed", exc_info=True)
    return None


def follows_labels(picked: torch.Tensor, new: torch.Tensor) -> bool:
    """Per-position labels ``(B, T)``: whether the scores pick each position's new label (``picked``: their argmax)
    beyond how often they pick the previous position's, by three binomial sds. A model that reads the previous label
    (a decoder shifting what it is handed) picks that one instead, and this one only where the two agree.

    >>> import torch
    >>> new = torch.randint(0, 5, (32, 20), generator=torch.Generator().manual_seed(0))
    >>> follows_labels(new, new), follows_labels(torch.roll(new, 1, 1), new)
    (True, False)
    """
    both = (new[:, 1:] >= 0) & (new[:, :-1] >= 0)
    n = int(both.sum())
    if not n:
        return False
    here = float((picked[:, 1:] == new[:, 1:])[both].float().mean())
    before = float((picked[:, 1:] == new[:, :-1])[both].float().mean())
    return here > before + 3 * math.sqrt(max(before * (1 - before), 1 / n) / n)


def sign_tail(up: int, down: int) -> float:
    """One-sided binomial tail ``P(X >= up)``, ``X ~ Bin(up + down, 1/2)``: moves that favour no side.

    >>> sign_tail(12, 0) < 1e-3, sign_tail(6, 6) > 0.5, sign_tail(900, 700) < 1e-3  # many positions
    (True, True, True)
    """
    moved = up + down
    return sum(math.comb(moved, k) for k in range(up, moved + 1)) / (1 << moved) if moved else 1.0  # exact ints


def toward_new_labels(before: torch.Tensor, after: torch.Tensor, new: torch.Tensor) -> tuple[int, int]:
    """``(samples whose log-probability of ``new`` rose, samples where it fell)`` beyond round-off, when the rises
    win a sign test at :data:`CHANCE` (each direction equally likely under a dependency without direction, as in an
    untrained model); ``(0, moved down)`` otherwise. A head that ignores the argument gives identical scores.

    >>> import torch
    >>> scores, new = torch.zeros(40, 4), torch.arange(40) % 4
    >>> toward_new_labels(scores, scores + torch.nn.functional.one_hot(new, 4), new)
    (40, 0)
    >>> toward_new_labels(scores, scores - torch.nn.functional.one_hot(new, 4), new)   # a margin head
    (0, 40)
    """
    half = before.dtype in (torch.float16, torch.bfloat16)
    lp = [s.float().log_softmax(1).gather(1, new[:, None])[:, 0] for s in (before, after)]
    delta = lp[1] - lp[0]
    tol = ROUND_OFF_HALF if half else ROUND_OFF
    up, down = int((delta > tol).sum()), int((delta < -tol).sum())
    moved = up + down
    if moved == 0 or up <= down:
        return 0, down
    return (up, down) if sign_tail(up, down) < CHANCE else (0, down)

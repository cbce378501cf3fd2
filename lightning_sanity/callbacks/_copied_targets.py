"""``target-leakage`` glue for sequence targets that are the input token at the same position (everywhere: a
next-token task whose targets were never shifted; or mostly: a masked LM whose labels were kept at every position):
after some training, does the model predict random tokens written at those positions, in the input and the target
alike?

Called by :class:`~lightning_sanity.callbacks.leakage.LeakageChecks` at its second look, with the call it kept;
the masks and the chance bound are in :mod:`lightning_sanity.checks.leakage`.
"""

from __future__ import annotations

from typing import Any

import math

import torch

from lightning_sanity.batch import map_tensors
from lightning_sanity.checks import leakage as L

ADVICE = ("Keep a label only where the model must predict a token it cannot see: for a masked LM, set the labels of "
          "every unmasked position to the loss's `ignore_index` (`labels = ids.masked_fill(~chosen, -100)`), so the "
          "loss scores the masked positions only.")


def random_like_tokens(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random token ids in ``[0, max + 1)`` of ``x``'s shape; negative (ignored) positions stay."""
    vocab = max(int(x.max()) + 1, 2)
    fresh = torch.randint(0, vocab, x.shape, generator=generator).to(x.device, x.dtype)
    return torch.where(x >= 0, fresh, x)


def copied_random_targets(callback: Any, trainer: Any, call: dict[str, Any], size: int, length: int,
                          when: str) -> None:
    """Random tokens at the copied positions, in the input and the target alike: can the model predict them?"""
    x, y = call["x"], call["y"]
    copied = L.copied_positions(x, y) if isinstance(y, torch.Tensor) else None
    if copied is None:
        return
    fresh = random_like_tokens(x, callback._generator)
    new_x, new_y = torch.where(copied, fresh, x), torch.where(copied, fresh.to(y.dtype), y)
    a, k = map_tensors((call["args"], call["kwargs"]), lambda v: new_x if v is x else new_y if v is y else v)
    out, _, _ = callback._output(call, a, k, size, length)
    vocab = max(int(x.max()) + 1, 2)
    share = float(copied.sum()) / max(int((y >= L.IGNORED).sum()), 1)
    if out is None or out.shape[-1] < vocab:
        callback._ran["target-leakage"].append(f"{share:.0%} of the targets are the input token: no per-token "
                                               "scores to test")
        return
    hits = (out.argmax(-1) == fresh.reshape(size, length)) & copied.reshape(size, length)
    count = int(copied.sum())
    accuracy = float(hits.sum()) / max(count, 1)
    callback._ran["target-leakage"].append(f"{share:.0%} of the targets are the input token at the same position; "
                                           f"accuracy on random tokens there {accuracy:.2f} ({when})")
    if not L.reads_random_targets(accuracy, 1 / vocab, count):
        return
    callback._found.add("target-leakage")
    callback.report(
        trainer, "target-leakage", "error",
        f"{share:.0%} of the supervised targets are the very token the model reads at the same position, and with "
        f"random tokens written there (input and target alike) the model predicts them with an accuracy of "
        f"{accuracy:.0%} (chance {1 / vocab:.1%}; {when}): most of the loss is won by copying the input, not by "
        "predicting what is hidden.",
        ADVICE, where=call["where"], key="copied-positions",
        data={"when": when, "vocab": vocab, "copied_share": share, "accuracy": accuracy},
    )


def same_random_targets(callback: Any, trainer: Any, call: dict[str, Any], size: int, length: int, when: str) -> None:
    """Random tokens written to the inputs and the targets alike: can the model predict them?"""
    x, y = call["x"], call["y"]
    fresh = random_like_tokens(x, callback._generator)
    a, k = map_tensors((call["args"], call["kwargs"]), lambda v: fresh if (v is x or v is y) else v)
    out, loss, _ = callback._output(call, a, k, size, length)
    vocab = max(int(x.max()) + 1, 2)
    used = fresh >= 0
    if loss is not None:  # the model shifts and scores inside (HuggingFace style): trust its own loss
        value, bound = float(loss), L.RANDOM_LOSS_FRACTION * math.log(vocab)
        callback._ran["target-leakage"].append(f"loss on random tokens {value:.3g} ({when}), ln V = {math.log(vocab):.3g}")
        leaked, figure = value < bound, f"a loss of {value:.3g} (ln V = {math.log(vocab):.3g})"
    elif callback._dict_batch:
        # A causal LM that shifts inside scores position t on token t + 1; without its own loss the
        # same-position accuracy below would judge a model that does not exist.
        callback._ran["target-leakage"].append("no `.loss` in the output to score random tokens with")
        return
    elif out is not None and out.shape[-1] >= vocab:
        hits = (out.argmax(-1) == fresh.reshape(size, length)) & used.reshape(size, length)
        accuracy = float(hits.sum()) / max(int(used.sum()), 1)
        callback._ran["target-leakage"].append(f"accuracy on random tokens {accuracy:.2f} ({when})")
        leaked = L.reads_random_targets(accuracy, 1 / vocab, int(used.sum()))
        figure = f"an accuracy of {accuracy:.0%} (chance {1 / vocab:.1%})"
    else:
        return
    if leaked:
        callback._found.add("target-leakage")
        callback.report(
            trainer, "target-leakage", "error",
            f"With random tokens as inputs and targets alike, the model predicts them with {figure} ({when}): "
            "random tokens cannot be predicted, so the model reads each target from the input at the same "
            "position instead of predicting the next one.",
            "Shift the targets: `inputs, targets = seq[:, :-1], seq[:, 1:]`, or inside the model compare "
            "`logits[:, :-1]` with `labels[:, 1:]`; keep the causal mask.",
            where=call["where"], key="same-positions", data={"when": when, "vocab": vocab},
        )

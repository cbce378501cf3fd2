"""``causal-leakage`` for a prompt-masked next-token batch (labels equal to ``input_ids`` on the answer, ignored on
the prompt: supervised fine-tuning, a prefix LM), which the main test takes for a copy task and skips: the cut is
chosen inside each compared row's answer (:func:`lightning_sanity.checks.answer_span.answer_cut`), so a prefix LM
that reads its whole prompt both ways stays silent. Called by :class:`~lightning_sanity.callbacks.leakage.
LeakageChecks` on the first look, under its ``no_grad``, eval mode and isolated RNG.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.callbacks._model_call import map_call
from lightning_sanity.callbacks._perturbed_call import PerturbedCall
from lightning_sanity.checks import leakage as L
from lightning_sanity.checks.answer_span import answer_cut

CHECK = "causal-leakage"


def _rows_call(call: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """The call cut to the samples in ``rows`` (every argument with the batch's size), identities preserved."""
    size = int(call["x"].shape[0])
    index = rows.nonzero()[:, 0]
    return map_call(call, lambda t: t.index_select(0, index.to(t.device)) if t.dim() > 0 and t.shape[0] == size
                    else t)


def check_answer_causal(callback: Any, trainer: Any, call: dict[str, Any], when: str) -> None:
    """Perturb the inputs after a position inside the answers; report when an output up to it moves."""
    x = call["x"]
    y = call["y"] if call.get("y") is not None else call.get("target")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        return
    found = answer_cut(x, y)
    if found is None:
        return
    t, rows = found
    sub = _rows_call(call, rows)
    probe = PerturbedCall(callback, sub)
    length = int(x.shape[1])
    if probe.base(int(rows.sum()), length) is None:
        return
    change = probe.change(sub["x"], t)
    callback._ran[CHECK].append(f"outputs at positions <= {t} (inside the answers) independent of the later "
                                "answer tokens")
    if change is None or not change.moved:
        return
    callback._found.add(CHECK)
    callback.report(
        trainer, CHECK, "error",
        f"The output at position {change.position} changes (by up to {change.change:.3g} at output scale "
        f"{change.scale:.3g}) when only the tokens after position {t} change, in {int(rows.sum())} samples whose "
        f"supervised answer spans position {t} and whose prompt ends before it ({when}, `{call['how']}`): the "
        "answer positions see the later answer tokens they are trained to predict (a prefix mask taken from the "
        "attention mask, a missing causal mask), so the teacher-forced loss means nothing and generation fails.",
        L.CAUSAL_ADVICE, where=call["where"], key="causal-answer",
        data={"position": change.position, "perturbed_after": t, "samples": int(rows.sum()), "length": length,
              "change": change.change, "scale": change.scale, "when": when, "called_as": call["how"]},
    )

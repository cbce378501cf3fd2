"""``loss-input`` glue for a ``kl_div`` whose distributions run along a token sequence's positions instead of its
vocabulary (the judgement is :func:`lightning_sanity.checks.distribution_axis.positions_instead_of_tokens`); called
by the loss inspector's target-side checks on the first step's ``kl_div`` calls."""

from __future__ import annotations

from typing import Any, Optional

from torch import nn

from lightning_sanity.checks import distribution_axis as DA
from lightning_sanity.findings import Severity


def check_distribution_axis(cb: Any, trainer: Any, call: Any, name: str, where: Optional[str]) -> None:
    """Report ``kl_div`` distributions over the positions of a token model's ``(B, T, V)`` prediction."""
    step = getattr(cb, "_step", None)
    model = getattr(trainer, "lightning_module", None)
    if step is None or model is None:
        return
    vocab = {int(m.num_embeddings) for m in model.modules() if isinstance(m, nn.Embedding)}
    problem = DA.positions_instead_of_tokens(call.input, call.target, call.log_target,
                                             getattr(step, "batch_input", None), vocab)
    if problem is None:
        return
    cb.report(
        trainer, "loss-input", Severity.ERROR,
        f"{name} compares distributions over the {problem['positions']} positions of the sequence: its "
        f"{tuple(problem['shape'])} input and target each sum to 1 along axis 1, not along the last axis, the "
        f"{problem['vocab']}-token vocabulary the model reads. Each position's prediction is not a distribution over "
        "tokens, and the loss matches how every token's score is spread over time.",
        "Take the softmax / log_softmax over the vocabulary (`dim=-1`) for both the student and the teacher; "
        "`dim=1` is the class axis of a (batch, classes) tensor only.",
        where=where, data={"loss": name, **problem})

"""The loss inspector's target-side ``loss-input`` findings and its ``initial-loss`` detail (glue, no math: that is
in :mod:`lightning_sanity.checks.loss_inputs` and :mod:`lightning_sanity.checks.loss_priors`)."""

from __future__ import annotations

from typing import Any, Optional

from lightning_sanity.callbacks._distribution_axis import check_distribution_axis
from lightning_sanity.checks import loss_inputs as LI
from lightning_sanity.checks import losses as L
from lightning_sanity.checks.loss_expectations import LossExpectation
from lightning_sanity.findings import Severity

#: Per family: the short names of the two references in the figures, and their long names in the verdict.
_REFERENCE_NAMES = {
    "classification": ("uniform", "label prior", "the uniform prediction", "the label prior"),
    "binary": ("uniform", "label prior", "the 0.5 prediction", "the label prior (positive rate)"),
    "kl_div": ("uniform", "best constant", "the uniform distribution", "the mean target distribution"),
    "gaussian_nll": ("uniform", "best constant", "the standard normal prediction", "the targets' mean and variance"),
    "poisson_nll": ("rate 1", "best constant", "the rate-1 prediction", "the mean count as the rate"),
    "regression": ("uniform", "best constant", "the zero prediction", "the best constant"),
}


def check_targets(cb: Any, trainer: Any, call: L.LossCall, name: str, where: Optional[str]) -> None:
    """Report target-side problems of one loss call (and what ``kl_div`` is fed) as ``loss-input`` errors."""
    if call.kind == "cross_entropy" and not L.hard_targets(call) and tuple(call.target.shape) == tuple(call.input.shape):
        problem = LI.soft_target_problem(L.class_rows(call.target))
        if problem:
            what = ("multi-hot vectors" if problem["multi_hot"] else
                    "rows with negative entries" if problem["negative"] else "rows that are not distributions")
            cb.report(
                trainer, "loss-input", Severity.ERROR,
                f"{name} got probability targets that are {what}: {problem['rows_off']} of {problem['rows']} rows "
                f"sum to {problem['row_sum_min']:.3g}..{problem['row_sum_max']:.3g}"
                + (f", {problem['negative']} entries are negative" if problem["negative"] else "")
                + "; cross_entropy expects each target row to be a distribution (non-negative, summing to 1).",
                "For several labels per sample use binary_cross_entropy_with_logits on the multi-hot targets; for "
                "soft labels normalise each row (`t / t.sum(1, keepdim=True)`).",
                where=where, data={"loss": name, **problem})
    if call.kind == "poisson_nll":
        problem = LI.poisson_target_problem(call.target)
        if problem:
            cb.report(
                trainer, "loss-input", Severity.ERROR,
                f"poisson_nll_loss got {problem['negative']} negative targets of {problem['targets']} (from "
                f"{problem['target_min']:.3g} to {problem['target_max']:.3g}, mean {problem['target_mean']:.3g}); a "
                "Poisson target is a count or a rate, never negative. With a negative target the loss has no minimum: "
                "it falls without bound as the predicted rate goes to 0, so training diverges instead of fitting.",
                "Give the loss the raw counts (or rates): do not standardise (z-score) Poisson targets with the "
                "features; if the targets must be centred, use a Gaussian loss such as mse_loss instead.",
                where=where, data={"loss": name, **problem})
        return
    if call.kind == "kl_div":
        problem = LI.kl_div_input_problem(call.input, call.target, call.log_target)
        if problem is None:
            check_distribution_axis(cb, trainer, call, name, where)
            return
        if problem["what"] == "log target":
            message = (f"kl_div got targets from {problem['target_min']:.3g} to {problem['target_max']:.3g}: "
                       "log-probabilities, but `log_target=False` reads the target as probabilities.")
            advice = "Pass `log_target=True`, or give the target as probabilities (`.exp()` / softmax)."
        else:
            message = (f"kl_div got {'probabilities' if problem['what'] == 'probabilities' else 'positive values'} "
                       f"as its input (from {problem['input_min']:.3g} to {problem['input_max']:.3g}), but it expects "
                       "log-probabilities (every value <= 0): the divergence it computes is meaningless and can be "
                       "negative, so minimising it does not match the distributions.")
            advice = ("Pass `F.log_softmax(logits, dim=-1)` as the input (the target stays probabilities); note "
                      "that kl_div(input, target) computes KL(target || exp(input)).")
        cb.report(trainer, "loss-input", Severity.ERROR, message, advice, where=where,
                  data={"loss": name, **problem})


def family(kind: str) -> str:
    """The reference names' family of a loss kind."""
    if kind in L.CLASSIFICATION:
        return "classification"
    if kind in L.BINARY:
        return "binary"
    if kind in ("kl_div", "gaussian_nll", "poisson_nll"):
        return kind
    return "regression"


def initial_detail(name: str, observed: float, e: LossExpectation, kind: str,
                   matches_prior: Optional[bool]) -> tuple[str, str]:
    """The ``initial-loss`` row: the first loss against the uniform prediction and the best constant (with its
    formula), and which of them the model starts from; and that verdict (see
    :func:`lightning_sanity.checks.loss_inputs.start_reference`)."""
    uniform_short, prior_short, uniform_name, prior_name = _REFERENCE_NAMES[family(kind)]
    start = LI.start_reference(observed, e.uniform, e.baseline, matches_prior)
    words = {
        "uniform": f"starts at {uniform_name}",
        "prior": f"starts at {prior_name}",
        "both": f"starts at {uniform_name}, which is {prior_name} here",
        "above": f"starts above both {uniform_name} and {prior_name}",
        "unknown": "start unknown",
    }[start]
    text = (f"{name} {observed:.4g} at init; {uniform_short} {e.uniform:.4g}; {prior_short} {e.baseline:.4g}"
            + (f" [{e.formula}]" if e.formula else "") + f": {words}")
    return text, start


def start_phrase(observed: float, e: LossExpectation, kind: str, matches_prior: Optional[bool]) -> tuple[str, str]:
    """Where the first loss sits against both references, in words for a finding's message, and the verdict of
    :func:`lightning_sanity.checks.loss_inputs.start_reference` (``"above"`` for an overconfident start).

    >>> e = LossExpectation(uniform=2.303, baseline=2.1, best_bias=[])
    >>> start_phrase(9.0, e, "cross_entropy", None)[0]
    'it starts above both the uniform prediction (2.303) and the label prior (2.1)'
    """
    _, _, uniform_name, prior_name = _REFERENCE_NAMES[family(kind)]
    start = LI.start_reference(observed, e.uniform, e.baseline, matches_prior)
    figures = f"{uniform_name} ({e.uniform:.4g}) and {prior_name} ({e.baseline:.4g})"
    words = {
        "uniform": f"it starts at {uniform_name} ({e.uniform:.4g}), not at {prior_name} ({e.baseline:.4g})",
        "prior": f"it starts at {prior_name} ({e.baseline:.4g}), not at {uniform_name} ({e.uniform:.4g})",
        "both": f"it starts at {uniform_name} ({e.uniform:.4g}), which is {prior_name} here",
        "above": f"it starts above both {figures}",
        "unknown": f"against {figures}",
    }[start]
    return words, start

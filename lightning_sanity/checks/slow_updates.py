"""``update-ratio`` kind ``slow``: a learning rate too small for the model, read from two facts of the run together.

Neither fact alone is a fault. Weights that move by a few 1e-5 of their norm per step are what a fine-tune at
lr=2e-5 does, and it learns fast from its pretrained features; a loss that ends within a few percent of the best
constant prediction is what a hard, noisy task gives. A model whose weights barely moved **and** whose loss ended the
whole planned run close to the baseline has been given a learning rate that cannot get it
anywhere in the time planned: the fine-tuning recipe on a model trained from scratch.

Example::

    >>> slow_updates({"loss_end_unjudged": {"tail": 2.07, "baseline": 2.3},
    ...               "update_ratio_median": {"median": 3.6e-5, "measurements": 30}})["ratio"]
    3.6e-05
    >>> slow_updates({"loss_end_unjudged": {"tail": 2.07, "baseline": 2.3},
    ...               "update_ratio_median": {"median": 2e-3, "measurements": 30}}) is None
    True
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from lightning_sanity.checks.verdict import _median

#: median ``||dw||/||w||`` of the weight layers at or below which the weights barely move: an order of magnitude
#: below the healthy 1e-3 (CS231n's rule of thumb; Adam moves each weight by about lr, so lr/|w| of 1e-3 is lr=1e-4
#: on weights of 0.1).
SLOW_RATIO = 1e-4
#: measurements needed (the ratio is read on a stride of steps, all layers at once).
MIN_MEASUREMENTS = 10
#: the loss ended above this share of the baseline: the run learned less than a fifth of what a constant prediction
#: leaves unexplained. loss-trend's 5 % is the bar for beating the baseline at all; a model of any use, fine-tuned or
#: trained from scratch, ends far below 80 % of it (no healthy run among the zoo's and third-party summaries kept
#: ends above it with a median update ratio of 1e-3 or less).
SLOW_END = 0.8


def loss_end(values: Sequence[float], baseline: Optional[float]) -> Optional[dict[str, float]]:
    """``{"tail", "baseline"}``: the median of the last fifth of ``values`` and a positive ``baseline``, or None."""
    if baseline is None or baseline <= 0 or len(values) < 10:
        return None
    return {"tail": float(_median(list(values[-max(5, len(values) // 5):]))), "baseline": float(baseline)}


def slow_updates(facts: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The ``data`` of a ``slow`` finding from ``facts`` (where the loss ended a whole planned run that loss-trend
    found no fault in, the weight layers' median update ratio), or None."""
    end, ratio = facts.get("loss_end_unjudged"), facts.get("update_ratio_median")
    if not end or not ratio or ratio["measurements"] < MIN_MEASUREMENTS or not ratio["median"] <= SLOW_RATIO:
        return None
    if end["tail"] <= SLOW_END * end["baseline"]:
        return None
    return {"kind": "slow", "ratio": ratio["median"], "measurements": ratio["measurements"], **end}


def slow_words(data: dict[str, Any]) -> tuple[str, str]:
    """The message and advice of a ``slow`` finding."""
    return (
        f"The weights barely moved over the whole run (median ||dw||/||w|| {data['ratio']:.2g} over "
        f"{data['measurements']} measurements; healthy: about 1e-3), and the training loss ended the planned run at "
        f"{data['tail']:.4g}, {data['tail'] / data['baseline']:.0%} of the best constant prediction's "
        f"{data['baseline']:.4g}: the learning rate is too small for this model to learn much in the time planned.",
        "Raise the learning rate by 10-100x (a learning-rate finder gives a start): rates like 1e-5 to 5e-5 suit "
        "fine-tuning pretrained weights, not a model trained from scratch. Check also the scheduler's peak and any "
        "factor that scales the rate down.",
    )

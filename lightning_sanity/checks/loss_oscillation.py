"""``loss-trend``'s "oscillating" verdicts: late in the run the loss keeps jumping far above its starting level
without coming down, or keeps jumping back above the input-independent baseline although its median is far below
it; both judged on values that each average enough samples for sampling alone not to make the jumps.

A training loss is one batch's estimate of the model's loss. Averaged over few samples, or dominated by a few of
them (a rare class weighted 16x is in a batch of 16 or not), it jumps by chance while the model stays put. So the
losses are averaged first over each optimizer update (the micro-batches of a gradient accumulation window are the
same parameters measured on different data: their differences are pure sampling noise), then over as many
neighbouring updates as it takes to reach :data:`OSCILLATION_SAMPLES` effective samples (Kish's
``(sum w)^2 / sum w^2`` for a loss with class weights). Updates that undo what was learned leave the model worse for
whole updates, which survives the averaging; noise does not.

Example::

    >>> round(effective_fraction([0.53, 8.6], [0.94, 0.06]), 2)  # 6 % spam weighted by inverse frequency
    0.22
    >>> averaging_window(batches_per_value=1, batches_per_update=4, samples_per_batch=16 * 0.22)  # 3 updates
    12
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Mapping, Optional

from lightning_sanity.checks.val_noise import SAMPLE_SPREAD, STANDARD_ERRORS
from lightning_sanity.checks.verdict import Verdict, _median

#: "Spikes": at least this share of the late values (and 3) above SPIKE_FACTOR x the starting level, while the late
#: median stays above SPIKE_MEDIAN_ABOVE x that level (the loss did not come down overall).
SPIKE_FACTOR, SPIKE_SHARE, SPIKE_MEDIAN_ABOVE = 1.5, 0.1, 0.5
#: "Bouncing above the baseline": late median below this fraction of the baseline, and at least this share of the
#: late values above the baseline itself, with at least this share of those in the late window's second half.
BOUNCE_MEDIAN_BELOW, BOUNCE_SHARE, BOUNCE_PERSIST = 0.65, 0.1, 0.2
#: Both rules call a value a jump when it rose about half its level: 1.5x the start for a spike, 1/0.65 = 1.54x the
#: median for a bounce at the rule's edge.
OSCILLATION_RISE = 0.5
#: Effective samples each judged value averages: with a sample's loss spreading sqrt(2) times its mean (the noise
#: model of ``val_noise``), a rise of half the level is 2 standard errors of a mean over (2 sqrt 2 / 0.5)^2 = 32
#: samples, so sampling alone makes it on a few percent of the values, well under the 10 % the rules need.
OSCILLATION_SAMPLES = round((STANDARD_ERRORS * SAMPLE_SPREAD / OSCILLATION_RISE) ** 2)
#: judged values needed in the late half (after the averaging).
OSCILLATION_MIN_LATE = 10


def effective_fraction(weights: Sequence[float], frequencies: Sequence[float]) -> float:
    """Kish's effective sample size of a weighted mean, as a fraction of the samples: ``(E w)^2 / E w^2`` over
    samples whose weight is ``weights[c]`` with frequency ``frequencies[c]`` (1 for equal weights).

    >>> effective_fraction([1.0, 1.0], [0.9, 0.1]), round(effective_fraction([1.0, 9.0], [0.9, 0.1]), 3)
    (1.0, 0.36)
    """
    pairs = [(float(w), float(f)) for w, f in zip(weights, frequencies) if f > 0 and w >= 0]
    total = sum(f for _, f in pairs)
    mean = sum(w * f for w, f in pairs) / total if total > 0 else 0.0
    square = sum(w * w * f for w, f in pairs) / total if total > 0 else 0.0
    return min(1.0, mean * mean / square) if square > 0 else 1.0


def samples_per_batch(facts: Mapping[str, Any], elements: Optional[float]) -> Optional[float]:
    """The effective samples one training batch's loss averages: ``elements`` (the terms of the loss's mean: the
    labels the loss call compared with, else the batch target's size) times the Kish fraction of the loss's class
    weights (``facts["class_weight"]``) or positive weights (``facts["pos_weight"]``) over the counted labels
    (``facts["label_counts"]``). None when the batch size is unknown.

    >>> round(samples_per_batch({"class_weight": [1.0, 9.0], "label_counts": [90, 10]}, 16), 2)
    5.76
    """
    if elements is None or not elements > 0:
        return None
    counts = facts.get("label_counts")
    if not isinstance(counts, (list, tuple)) or sum(counts) <= 0:
        return float(elements)
    weights: Optional[list[float]] = None
    if facts.get("class_weight"):
        weights = list(facts["class_weight"])[:len(counts)]
        counts = list(counts)[:len(weights)]
    elif facts.get("pos_weight") and len(counts) == 2:
        # Positives weighted pos_weight (per output: their mean and mean square), negatives 1.
        pos = [float(v) for v in facts["pos_weight"]]
        mean, square = sum(pos) / len(pos), sum(v * v for v in pos) / len(pos)
        total = float(sum(counts))
        p = counts[1] / total
        fraction = ((1 - p) + p * mean) ** 2 / ((1 - p) + p * square) if (1 - p) + p * square > 0 else 1.0
        return float(elements) * min(1.0, fraction)
    if weights is None:
        return float(elements)
    return float(elements) * effective_fraction(weights, counts)


def averaging_window(batches_per_value: int, batches_per_update: int, samples_per_batch: Optional[float]) -> int:
    """Consecutive values averaged into one judged value: whole optimizer updates (accumulation windows), enough
    of them to hold :data:`OSCILLATION_SAMPLES` effective samples when the batch's samples are known.

    >>> averaging_window(1, 1, 64.0), averaging_window(1, 1, 8.0), averaging_window(1, 4, None)
    (1, 4, 4)
    >>> averaging_window(2, 4, 2.0)  # values of 2 batches, updates of 4 batches of 2 samples: 4 updates
    8
    """
    # Chunks of the history from its start: where an epoch's batches are not a multiple of the accumulation, later
    # chunks straddle two neighbouring updates, which averages noise just as well.
    per_value = max(1, batches_per_value)
    update = max(1, math.ceil(max(1, batches_per_update) / per_value))
    if samples_per_batch is None or not samples_per_batch > 0:
        return update
    needed = math.ceil(OSCILLATION_SAMPLES / (samples_per_batch * per_value * update) - 1e-9)
    return update * max(1, needed)


def window_means(values: Sequence[float], window: int) -> list[float]:
    """Means of ``window`` consecutive values (the last mean over what is left).

    >>> window_means([1.0, 3.0, 2.0, 4.0, 5.0], 2)
    [2.0, 3.0, 5.0]
    """
    window = max(1, int(window))
    return [sum(values[i:i + window]) / len(values[i:i + window]) for i in range(0, len(values), window)]


def judge_oscillation(values: Sequence[float], baseline: Optional[float], seen: str, data: dict[str, Any], *,
                      window: int = 1, batches_per_value: int = 1) -> Optional[Verdict]:
    """The "oscillating" verdict on the means of ``window`` consecutive losses (see :func:`averaging_window`):
    late spikes far above the starting level without coming down, or jumps back above ``baseline`` although the
    median is well below it; None when neither.

    >>> judge_oscillation([0.5] * 60, 2.3, "all", {}) is None
    True
    >>> judge_oscillation([0.5] * 12 + [0.5, 0.5, 0.5, 0.5, 2.9] * 12, 2.3, "all", {}).kind
    'oscillating'
    >>> judge_oscillation([0.5] * 12 + [0.5, 0.5, 0.5, 0.5, 2.9] * 12, 2.3, "all", {}, window=5) is None  # 0.98
    True
    """
    judged = window_means(values, window)
    late = judged[len(judged) // 2:]
    if len(late) < OSCILLATION_MIN_LATE:
        return None
    if window > 1:
        data["batches_per_judged_value"] = window * max(1, batches_per_value)
    what = "values" if window == 1 else f"values (each the mean of {window} consecutive losses)"
    head = _median(judged[:max(5, len(judged) // 10)])
    return _spikes(late, head, seen, data, what) or _bounce(late, baseline, seen, data, what)


def _spikes(late: list[float], head: float, seen: str, data: dict[str, Any], what: str) -> Optional[Verdict]:
    # The loss keeps jumping far above where it started, late in the run, without having come down overall.
    # Healthy noise stays below the starting level once the model learned anything, so 1.5x the start is a spike.
    if not head > 0:
        return None
    spikes = sum(v > SPIKE_FACTOR * head for v in late)
    late_median = _median(late)
    if spikes < max(3, SPIKE_SHARE * len(late)) or late_median <= SPIKE_MEDIAN_ABOVE * head:
        return None
    data.update({"late_spikes": spikes, "late_values": len(late), "late_median": round(late_median, 6),
                 "late_max": round(max(late), 6)})
    return Verdict(
        "oscillating",
        f"The training loss oscillates strongly: {spikes} of the last {len(late)} {what} jumped above 1.5x its "
        f"starting level {head:.4g} (up to {max(late):.4g}) and its median {late_median:.4g} did not come down; "
        f"{seen}.",
        "Lower the learning rate by 3-10x; add gradient clipping or warmup if the spikes come with large gradients.",
        data,
    )


def _bounce(late: list[float], baseline: Optional[float], seen: str, data: dict[str, Any],
            what: str) -> Optional[Verdict]:
    # Once the model beats the best constant prediction by a wide margin, its loss stays below that constant;
    # repeated jumps back above it mean updates so large that each one undoes what was learned (a learning rate
    # too high, short of diverging).
    if baseline is None or baseline <= 0:
        return None
    late_median = _median(late)
    above = sum(v > baseline for v in late)
    # "Keeps": the jumps go on to the end. Jumps that die out within the window (a start too confident or too
    # fast, settling as the run goes on) put most of them in its first half; at a constant rate the second
    # half holds fewer than a fifth of them by chance well under 1 % of the time.
    persists = sum(v > baseline for v in late[len(late) // 2:]) >= BOUNCE_PERSIST * above
    if not (late_median < BOUNCE_MEDIAN_BELOW * baseline and above >= max(4, BOUNCE_SHARE * len(late)) and persists):
        return None
    data.update({"late_above_baseline": above, "late_values": len(late), "late_median": round(late_median, 6),
                 "late_max": round(max(late), 6)})
    return Verdict(
        "oscillating",
        f"The training loss keeps jumping back above the input-independent baseline {baseline:.4g}: {above} of "
        f"the last {len(late)} {what} (up to {max(late):.4g}), although its median {late_median:.4g} is well "
        f"below it, so the updates keep undoing what was learned; {seen}.",
        "Lower the learning rate by 3-10x; add warmup or gradient clipping if the jumps come with large "
        "gradients.",
        data,
    )

"""The loss-trend judgements that compare a run with its input-independent baseline.

Pure functions on lists of floats, no Trainer; :func:`lightning_sanity.checks.loss_trend.judge_loss_trend` calls
them. Two questions are asked here:

- **Does the run end at the prior?** A model that ignores its input can do no better than the best constant
  prediction (for cross-entropy: the entropy of the label prior). Averaged over many batches a constant prediction
  never beats it, so a loss whose end is not *significantly* below the baseline (within two standard errors of the
  mean of the last fifth of the run) has learned nothing from its inputs: :func:`ends_at_baseline`.
- **Did the loss explode early and then come back?** With a sane optimizer, the loss of the first updates stays
  near its start. A sustained excursion far above both the start and the baseline (:data:`EXPLOSION_FACTOR` x,
  the same factor as the ``explodes`` mode of the overfit recipe, :data:`lightning_sanity.checks.curves.SPIKE_FACTOR`)
  means the updates were far too large for the loss surface; the run may drift back, but it spends its budget
  recovering and ends far from where it could be: :func:`early_explosion`.

Example::

    >>> ends_at_baseline([2.31, 2.29, 2.33, 2.30, 2.28], baseline=2.30)
    True
    >>> ends_at_baseline([0.4, 0.5, 0.45, 0.42, 0.5], baseline=2.30)
    False
    >>> early_explosion([2.4, 30.0, 36.0, 24.0, 17.0, 8.0, 3.0, 2.0] + [1.0] * 30, start=2.4, baseline=2.3)["peak"]
    36.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

from lightning_sanity.checks.curves import SPIKE_FACTOR

#: An explosion: the loss went above this many times max(start, baseline). A healthy optimizer never climbs above
#: its start by more than batch noise; a learning rate 100x too high spikes to 4x-10,000x within a few steps.
EXPLOSION_FACTOR = SPIKE_FACTOR
#: ... on at least this many consecutive values: one outlier batch (a heavy-tailed regression target) is not enough.
EXPLOSION_RUN = 3
#: ... and more than noise would give: a run that long above the threshold, expected by chance among the losses
#: near it at least this often, is no evidence (see ``_recurs``).
CHANCE_RUNS = 0.05
#: losses near an excursion that its noise is read from, at least (or four times the excursion's reach).
LOCAL_VALUES = 40
#: Standard errors of the tail mean by which the end must beat the baseline to count as below it (two-sided 95 %).
BASELINE_STANDARD_ERRORS = 2.0


def tail_mean_and_error(values: Sequence[float]) -> tuple[float, float]:
    """Mean of ``values`` and its standard error (0 for fewer than two values).

    >>> tail_mean_and_error([1.0, 3.0])
    (2.0, 1.0)
    """
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def ends_at_baseline(tail: Sequence[float], baseline: Optional[float]) -> bool:
    """Whether the mean of ``tail`` is not significantly below ``baseline`` (the model ends at the prior).

    Significantly: by more than :data:`BASELINE_STANDARD_ERRORS` standard errors of the mean. A constant
    prediction's loss averaged over batches is never below the best constant's, so a run that learned nothing
    from its inputs ends here; one that learned anything ends below it.
    """
    if baseline is None or not math.isfinite(baseline) or baseline <= 0 or not tail:
        return False
    mean, error = tail_mean_and_error(tail)
    return mean >= baseline - BASELINE_STANDARD_ERRORS * error


def early_explosion(values: Sequence[float], start: float, baseline: Optional[float]) -> Optional[dict[str, Any]]:
    """The first sustained excursion of the loss above ``EXPLOSION_FACTOR x max(start, baseline)``, or None.

    Sustained: at least ``EXPLOSION_RUN`` values in a row, and a run that noise does not explain (``_recurs``):
    ``start`` is one batch's loss, and with a sample or two per batch the losses of a healthy run cross three
    times a low first batch now and then.

    Args:
        values: the training losses in order.
        start: the loss before (or at) the first update.
        baseline: the best input-independent loss, or None.

    Returns:
        ``{"peak", "peak_index", "first_index", "threshold", "recovered_index"}``: the highest value, where it
        and the excursion began, the threshold, and the first index after the peak back below ``max(start,
        baseline)`` (None if it never came back).
    """
    reference = max(start, baseline or 0.0)
    if not math.isfinite(reference) or reference <= 0:
        return None
    found = _excursion(values, reference)
    if found is None or _recurs(values, found, EXPLOSION_FACTOR * reference):
        return None
    first, end = found
    peak_index = max(range(first, end), key=lambda k: values[k])
    recovered = next((k for k in range(peak_index, len(values)) if values[k] < reference), None)
    return {"peak": values[peak_index], "peak_index": peak_index, "first_index": first,
            "threshold": EXPLOSION_FACTOR * reference, "recovered_index": recovered,
            "early": first < len(values) // 2}


def _recurs(values: Sequence[float], excursion: tuple[int, int], threshold: float) -> bool:
    """Whether noise explains ``excursion``: among the losses near it (the first ``max(4 x its end,
    LOCAL_VALUES)``), ``m`` of ``n`` are above ``threshold``; were those ``m`` placed at random, a run as long as
    the excursion (``L``) would be expected ``(n - L + 1) x m(m-1)...(m-L+1) / (n(n-1)...(n-L+1))`` times. At
    least :data:`CHANCE_RUNS` means very noisy losses (batches of a sample or two) or a loss that keeps
    spiking, not one early explosion; a real explosion is one long run with nothing like it around."""
    first, end = excursion
    near = values[: max(4 * end, LOCAL_VALUES)]
    if len(near) < LOCAL_VALUES:
        return False  # too few losses to read their noise from: three in a row above it stands
    n, m, length = len(near), sum(v > threshold for v in near), end - first
    chance = float(n - length + 1)
    for i in range(length):
        chance *= (m - i) / (n - i)
    return chance >= CHANCE_RUNS


def _excursion(values: Sequence[float], reference: float) -> Optional[tuple[int, int]]:
    """``(first, end)`` of the first run of at least ``EXPLOSION_RUN`` values above ``EXPLOSION_FACTOR x
    reference``, or None."""
    threshold = EXPLOSION_FACTOR * reference
    run = 0
    for i, value in enumerate(values):
        run = run + 1 if value > threshold else 0
        if run >= EXPLOSION_RUN:
            first = end = i - run + 1
            while end < len(values) and values[end] > threshold:
                end += 1
            return first, end
    return None


def label_prior_entropy(counts: Sequence[float], classes: Optional[int] = None) -> Optional[float]:
    """Entropy (nats) of the label prior from class counts, Miller-Madow corrected, at most ``ln(classes)``.

    The plug-in entropy of a sample under-estimates the true one by about (K - 1) / 2N nats (K classes seen, N
    labels); the correction adds that back. The uniform prediction costs ln C whatever the labels, so the best
    constant never costs more: the estimate is capped there.

    >>> round(label_prior_entropy([50, 50, 50, 50, 50, 50, 50, 50, 50, 50], classes=10), 4)
    2.3026
    >>> round(label_prior_entropy([30, 10]), 4)
    0.5748
    """
    total = float(sum(counts))
    if total <= 0:
        return None
    seen = [c for c in counts if c > 0]
    entropy = -sum(c / total * math.log(c / total) for c in seen) + (len(seen) - 1) / (2 * total)
    if classes is not None and classes > 1:
        entropy = min(entropy, math.log(classes))
    return entropy


def brief_explosion(explosion: dict[str, Any], values: Sequence[float], start: float, tail: float,
                    baseline: Optional[float]) -> bool:
    """Whether an early ``explosion`` cost the run nothing it can show: it was back below its reference within the
    first fifth of the run (at most a fifth of its budget spent recovering) and the run ends at least
    ``EXPLOSION_FACTOR`` times below that reference, as far below it as the explosion's threshold was above.

    A run that "spent its budget recovering" ends near where it started (an lr 100x too high: 2.30 -> 178 and back
    to 1.97 against ln 10); a brief spike of a healthy SGD run (2.43 -> 8.8, back at batch 9 of 282) ends hundreds
    of times below its start. The first is a finding, the second only information.

    >>> brief_explosion({"recovered_index": 8, "early": True}, [1.0] * 282, 2.43, 0.0056, 2.30)
    True
    >>> brief_explosion({"recovered_index": 10, "early": True}, [1.0] * 120, 2.30, 1.97, 2.30)
    False
    """
    reference = max(start, baseline or 0.0)
    recovered = explosion.get("recovered_index")
    if recovered is None or not explosion.get("early") or not math.isfinite(tail):
        return False
    return recovered < max(5, len(values) // 5) and tail * EXPLOSION_FACTOR < reference


def explosion_words(explosion: dict[str, Any], start: float, tail: float, baseline: Optional[float], seen: str,
                    data: dict[str, Any], batches_per_value: int = 1, brief: bool = False) -> tuple[str, str]:
    """Message and advice for an :func:`early_explosion` (``brief``: one :func:`brief_explosion` judged harmless);
    adds its figures to ``data``.

    Value ``i`` of the history is the loss of training batch ``i + 1`` (of the batches ``i * batches_per_value + 1``
    onwards when the history is thinned), computed after ``i`` updates.
    """
    peak, at = explosion["peak"], explosion["peak_index"]
    batch = at * batches_per_value + 1
    reference = max(start, baseline or 0.0)
    recovered = explosion["recovered_index"]
    data.update(explosion_peak=round(peak, 6), explosion_batch=batch,
                explosion_threshold=round(explosion["threshold"], 6),
                recovered_batch=None if recovered is None else recovered * batches_per_value + 1)
    level = f"the best constant prediction's {baseline:.4g}" if baseline and baseline >= start else "its start"
    back = (f"was back below that level at batch {data['recovered_batch']}" if recovered is not None
            else "never came back below that level")
    if brief:
        why = ("a brief spike of the first updates, recovered from within the first fifth of the run; a warm-up "
               "would avoid it")
    elif explosion["early"]:
        why = "the first updates were far too large and the run spent its budget recovering"
    else:
        why = "the updates became far too large for the loss surface"
    message = (f"The training loss exploded{' early' if explosion['early'] else ''}: from {start:.4g} before the first "
               f"update to {peak:.4g} at training batch {batch} ({peak / reference:.3g}x {level}), {back}, and ends at "
               f"{tail:.4g}: {why}; {seen}.")
    advice = ("Lower the learning rate by 10x (a learning-rate finder gives a starting point) or add a warm-up; "
              "clip gradients if the spike came with a gradient-norm spike.")
    return message, advice


def escalate_at_baseline(verdict: Any, tail: Sequence[float], baseline: Optional[float]) -> None:
    """Make ``verdict`` an error saying the model ends at the prior, when the ``tail`` of a finished run is there."""
    if not ends_at_baseline(tail, baseline):
        return
    mean, error = tail_mean_and_error(tail)
    verdict.severity = "error"
    verdict.data.update(ends_at_baseline=True, tail_mean=round(mean, 6), tail_standard_error=round(error, 6))
    verdict.message = (f"{verdict.message.rstrip('.')}. The model ends at the prior: the last {len(tail)} losses "
                       f"average {mean:.4g} (+- {error:.2g}), no better than the {baseline:.4g} of the best constant "
                       "prediction.")


# ------------------------------------------------------------------------------------------------ the callback's facts


def finite_or_none(value: Any) -> Optional[float]:
    """``value`` as a float when it is a finite number (or one-element tensor), else None."""
    if hasattr(value, "numel") and value.numel() == 1:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


#: The ``ln C`` fallback stands for a training loss that is the cross-entropy plus small extra terms (a weight
#: penalty, an auxiliary loss): within this fraction of the whole loss at the first step. ELECTRA's loss is the
#: generator's cross-entropy (4.5 at init) plus 50 x the discriminator's BCE (33): no baseline of the sum is known.
OTHER_TERMS = 0.25


def trend_baseline(facts: dict[str, Any]) -> tuple[Optional[float], str]:
    """The input-independent baseline loss-trend judges against, and how it was obtained (for the detail).

    In order: ``ln C`` when the data checks found the first batches sorted by label (their prior is not the data
    set's); the label prior's entropy over every label the data checks counted, when the training loss is a
    plain cross-entropy (or binary cross-entropy) on the batch's hard labels (``facts["label_counts"]`` and
    ``facts["baseline_from_label_prior"]``); else the best constant of the ``initial-loss`` check
    (``facts["baseline_loss"]``, one batch); else ``ln C`` for a cross-entropy over C classes that makes nearly all
    of the training loss (``facts["main_loss_share"]``, :data:`OTHER_TERMS`). A cross-entropy
    baseline is never above ``ln C``: the uniform prediction costs that whatever the labels.

    >>> trend_baseline({"baseline_loss": 2.35, "loss_kind": "cross_entropy", "num_classes": 10})[0] == math.log(10)
    True
    >>> trend_baseline({"baseline_loss": 1.2, "loss_kind": "mse"})
    (1.2, 'best constant prediction (initial-loss)')
    """
    kind = facts.get("loss_kind")
    classes = facts.get("num_classes") if kind == "cross_entropy" else 2 if kind == "binary_cross_entropy" else None
    classes = classes if isinstance(classes, int) and classes > 1 else None
    counts = facts.get("label_counts")
    share = facts.get("main_loss_share")
    whole = share is None or abs(share - 1) <= OTHER_TERMS  # the cross-entropy is (nearly) the whole training loss
    if facts.get("labels_sorted") and kind == "cross_entropy" and classes is not None and whole:
        # The first batches of data in label order hold a few classes: their prior is not the data set's.
        return math.log(classes), f"ln {classes} (uniform prediction; the first batches are sorted by label)"
    weight, smoothing = facts.get("class_weight"), facts.get("label_smoothing") or 0.0
    if facts.get("baseline_from_label_prior") and counts and sum(counts) > 0:
        if kind == "cross_entropy" and classes is not None and (weight or smoothing):
            # Weights and smoothing applied to every counted label, not to one batch's noisy few.
            from lightning_sanity.checks.loss_priors import cross_entropy_prior

            padded = list(counts)[:classes] + [0.0] * max(0, classes - len(counts))
            w = weight if weight and len(weight) == classes else [1.0] * classes
            prior = cross_entropy_prior(padded, w if weight else None, smoothing)
            if prior is not None and prior.value > 0:
                # The plug-in estimate from N labels is biased low by about (K - 1) / 2N nats (Miller-Madow); with
                # weights the frequencies are noisier, as from Kish's effective size (sum w n)^2 / sum w^2 n. A
                # low baseline turns a slow healthy run into "ends at the prior": correct, and never above the
                # uniform prediction's loss, which bounds the best constant whatever the labels.
                wn = sum(wi * ni for wi, ni in zip(w, padded))
                w2n = sum(wi * wi * ni for wi, ni in zip(w, padded))
                seen = sum(1 for ni in padded if ni > 0)
                value = min(prior.uniform, prior.value + (seen - 1) * w2n / (2 * wn * wn)) if wn > 0 else prior.value
                return value, (f"best constant of {int(sum(counts))} labels (bias-corrected, at most the uniform "
                               f"prediction's), {prior.formula}")
        else:
            value = label_prior_entropy(counts, classes)
            if value is not None and value > 0:
                return value, f"label-prior entropy H(p) = -sum_c p_c ln p_c of {int(sum(counts))} labels"
    formula = facts.get("baseline_formula")
    value = finite_or_none(facts.get("baseline_loss"))
    if value is not None and value > 0:
        if classes is not None and value > math.log(classes) and not (weight and smoothing):
            return math.log(classes), f"ln {classes} (uniform prediction)"
        return value, "best constant prediction (initial-loss)" + (f": {formula}" if formula else "")
    if kind == "cross_entropy" and classes is not None and whole:
        return math.log(classes), f"ln {classes} (uniform prediction)"
    return None, ""


def trend_words(values: Sequence[float], start: Optional[float], baseline: Optional[float], how: str) -> str:
    """The loss-trend row of the summary: where the loss started, where it ended, and the baseline with its source.

    The start is the loss before the first update (the ``initial-loss`` figure) when known; the median of the first
    tenth is added when it differs, as after an early spike.

    >>> trend_words([2.3] * 10 + [0.5] * 10, 2.31, 2.30, "ln 10 (uniform prediction)")
    'loss 2.31 before the first update -> 0.5 (median of the last fifth); baseline 2.3, ln 10 (uniform prediction)'
    """
    n = len(values)
    ordered = sorted(values[-max(5, n // 5):])
    tail = ordered[len(ordered) // 2]
    head_values = sorted(values[:max(5, n // 10)])
    head = head_values[len(head_values) // 2]
    if start is None:
        text = f"loss {values[0]:.3g} at the first batch"
        start = values[0]
    else:
        text = f"loss {start:.3g} before the first update"
    if abs(head - start) > 0.1 * max(abs(start), 1e-12):
        text += f" ({head:.3g} median of the first tenth)"
    text += f" -> {tail:.3g} (median of the last fifth)"
    if baseline is not None:
        text += f"; baseline {baseline:.3g}, {how}"
    return text

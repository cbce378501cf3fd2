"""The math behind ``loss-trend``: a training-loss history judged rising, negative, flat from the start,
exploded, oscillating, or never clearly below the input-independent baseline.

Pure functions on lists of host floats; :class:`~lightning_sanity.callbacks.loss_dynamics.LossDynamics` collects
the losses and reports the verdict.

Example::

    >>> verdict, _ = judge_loss_trend([2.3 + 0.1 * i for i in range(40)], progress=1.0, seen="all")
    >>> verdict.kind
    'rising'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Optional

from lightning_sanity.checks.loss_baseline import (brief_explosion, early_explosion, escalate_at_baseline,
                                                   explosion_words)
from lightning_sanity.checks.loss_oscillation import averaging_window, judge_oscillation
from lightning_sanity.checks.verdict import Verdict, _median, rank_correlation

# Loss trend. Window sizes: the head is the first tenth of the losses seen, the tail the last fifth, both at
# least 5 values; medians keep single noisy batches from deciding anything.
LOSS_MIN_VALUES = 20
#: the tail must be at least this far below the input-independent baseline (relative) to count as beating it.
#: 5 %: shuffled labels on digits sit within 1 % of ln(10) after several epochs; healthy runs end far below.
BASELINE_MARGIN = 0.05
#: "flat from the start": the tail median within 2 % of the head median.
FLAT_MARGIN = 0.02
#: "rising": the tail median at least twice the head median and the losses rank-correlated with time.
RISE_FACTOR = 2.0
RISE_CORRELATION = 0.6
#: the second half of the run ranks this strongly downward: still learning, not stuck.
STILL_FALLING_CORRELATION = 0.5
#: "still learning", exempt from the flat and baseline patterns: the whole run, in blocks, ranks this strongly
#: downward AND the tail got at least LEARNING_BELOW_BASELINE below the baseline. A cautious two-epoch fine-tune
#: (Adam 1e-4, class-weighted cross-entropy on digits) ends 3-4 % below ln 10 while still falling; shuffled labels
#: also drift down slowly as the net memorises (trend down to about -0.5 over 3-8 epochs) but stay within
#: 1-1.6 % of the baseline, so the distance from the baseline is what tells them apart.
LEARNING_CORRELATION = 0.5
LEARNING_BELOW_BASELINE = 0.02
#: Validation shows learning when its loss fell at every validation run (the one before training included, at least
#: this many values) and ended LEARNING_BELOW_BASELINE below the baseline: memorised (shuffled) labels never
#: generalise below the best constant prediction, a slow healthy run does (a two-epoch Adam 1e-4 digits run whose
#: training loss ended 1.8 % below ln 10 brought validation from 2.32 to 2.25, falling at each run).
VAL_LEARNING_MIN_VALUES = 3
#: values per block for the trend above: about 20 block means, so batch-to-batch noise does not hide a slow fall.
LEARNING_BLOCKS = 20
#: "the model is not using its inputs" is claimed only when the second half of the run has no trend left (|Spearman|
#: below this) and at least half of the planned training was seen; otherwise it may just be slow.
STUCK_CORRELATION = 0.3
STUCK_MIN_PROGRESS = 0.5


def validation_learns(val_losses: Sequence[float], baseline: Optional[float]) -> bool:
    """Whether the validation loss fell at every validation run and ended clearly below the baseline.

    >>> validation_learns([2.32, 2.28, 2.25], 2.3026), validation_learns([2.32, 2.29, 2.30], 2.3026)
    (True, False)
    """
    values = [float(v) for v in val_losses if v is not None and math.isfinite(v)]
    if baseline is None or baseline <= 0 or len(values) < VAL_LEARNING_MIN_VALUES or len(values) != len(val_losses):
        return False
    return all(b < a for a, b in zip(values, values[1:])) and values[-1] < (1 - LEARNING_BELOW_BASELINE) * baseline


def _block_trend(values: Sequence[float], blocks: int) -> float:
    """Rank correlation of the means of about ``blocks`` consecutive blocks: a slow trend under noisy batches."""
    size = max(1, len(values) // blocks)
    means = [sum(values[i:i + size]) / len(values[i:i + size]) for i in range(0, len(values), size)]
    return rank_correlation(means)


def judge_loss_trend(
    losses: Sequence[float],
    *,
    start: Optional[float] = None,
    batches_per_value: int = 1,
    batches_per_update: int = 1,
    samples_per_batch: Optional[float] = None,
    progress: Optional[float],
    seen: str,
    baseline: Optional[float] = None,
    nonnegative: bool = False,
    log_probability: bool = False,
    min_progress: float = 0.25,
    baseline_min_progress: float = 0.3,
    rise_factor: float = RISE_FACTOR,
    flat_margin: float = FLAT_MARGIN,
    baseline_margin: float = BASELINE_MARGIN,
    val_losses: Sequence[float] = (),
) -> tuple[Optional[Verdict], Optional[str]]:
    """Judge a training-loss history: rising, negative and falling without bound, flat from the start,
    oscillating strongly, or never clearly below the input-independent baseline.

    Args:
        losses: the finite training losses in order (one per batch, or averaged blocks of batches).
        start: the loss before the first update (``facts["initial_loss"]``); the first value when None.
        batches_per_value: training batches averaged into each of ``losses`` (long runs are thinned).
        batches_per_update: training batches per optimizer update (``accumulate_grad_batches``).
        samples_per_batch: effective samples one batch's loss averages (see
            :func:`lightning_sanity.checks.loss_oscillation.samples_per_batch`), or None when unknown.
        progress: fraction of the planned training seen, or None when the plan is unknown.
        seen: words for how much of the planned training was seen, for the message.
        baseline: the best input-independent loss (``facts["baseline_loss"]``), or None.
        nonnegative: the loss function can never go below zero (cross-entropy, MSE, ...).
        log_probability: the loss is a log-probability of the targets kept as it is (no minus sign: see
            :func:`lightning_sanity.checks.loss_graph.is_log_probability`); falling, it is a sign flip.
        min_progress: judge nothing before this fraction of the planned training.
        baseline_min_progress: judge "never beats the baseline" only after this fraction.
        rise_factor: "rising" needs the tail median at least this many times the head median.
        flat_margin: "flat from the start" needs the tail median within this fraction of the head median.
        baseline_margin: the tail must get this fraction below the baseline to count as beating it.
        val_losses: the validation loss before training (when known) and after each validation run since.

    Returns:
        ``(verdict, None)`` when something is wrong, ``(None, None)`` when healthy, ``(None, reason)`` when there
        was too little to judge. A verdict on a run seen whole whose end is not below the baseline is an error
        ("the model ends at the prior", see :func:`lightning_sanity.checks.loss_baseline.ends_at_baseline`).

    >>> verdict, _ = judge_loss_trend([2.3 + 0.1 * i for i in range(40)], progress=1.0, seen="all")
    >>> verdict.kind
    'rising'
    >>> judge_loss_trend([2.3 * 0.9 ** i for i in range(40)], progress=1.0, seen="all", baseline=2.3)
    (None, None)
    >>> slow_rise = [2.3 + 0.02 * i for i in range(40)]  # the tail is 1.3x the head
    >>> judge_loss_trend(slow_rise, progress=1.0, seen="all")
    (None, None)
    >>> judge_loss_trend(slow_rise, progress=1.0, seen="all", rise_factor=1.2)[0].kind
    'rising'
    """
    values = [float(v) for v in losses if v is not None and math.isfinite(v)]
    verdict, reason = _judge_loss_pattern(
        values, start=start, batches_per_value=batches_per_value,
        oscillation_window=averaging_window(batches_per_value, batches_per_update, samples_per_batch),
        progress=progress, seen=seen, baseline=baseline,
        nonnegative=nonnegative, log_probability=log_probability, min_progress=min_progress,
        baseline_min_progress=baseline_min_progress,
        rise_factor=rise_factor, flat_margin=flat_margin, baseline_margin=baseline_margin,
        val_learning=validation_learns(val_losses, baseline))
    # Only a run seen whole (progress 1: it ended on its own or reached its plan) is judged to end at the prior.
    if verdict is not None and verdict.kind != "negative" and progress is not None and progress >= 1.0:
        escalate_at_baseline(verdict, values[-max(5, len(values) // 5):], baseline)
    return verdict, reason


def _judge_loss_pattern(values: list[float], *, start: Optional[float], batches_per_value: int, oscillation_window: int,
                        progress: Optional[float], seen: str, baseline: Optional[float], nonnegative: bool,
                        log_probability: bool,
                        min_progress: float,
                        baseline_min_progress: float, rise_factor: float, flat_margin: float,
                        baseline_margin: float, val_learning: bool = False) -> tuple[Optional[Verdict], Optional[str]]:
    n = len(values)
    if n < LOSS_MIN_VALUES:
        return None, f"too little to judge: {n} finite loss values (needs {LOSS_MIN_VALUES}); {seen}"
    if progress is not None and progress < min_progress:
        return None, f"too little of the planned training to judge ({seen}; needs {min_progress:.0%})"
    w_head, w_tail = max(5, n // 10), max(5, n // 5)
    head, tail = _median(values[:w_head]), _median(values[-w_tail:])
    late = values[n // 2:]
    start = values[0] if start is None or not math.isfinite(start) else float(start)
    data: dict[str, Any] = {"start": round(start, 6), "head_median": round(head, 6), "tail_median": round(tail, 6),
                            "values": n}
    if progress is not None:
        data["fraction_of_planned_training_seen"] = round(progress, 3)
    if baseline is not None:
        data["baseline"] = round(float(baseline), 6)

    # A log-probability of the targets, minimised: the likelihood of the right answers is pushed down.
    if log_probability and tail < head:
        return Verdict(
            "negative",
            f"The training loss is the log-probability of the targets itself (a log-softmax or log-sigmoid followed "
            f"only by a selection and a mean, no minus sign), and minimising it took it from {head:.4g} to "
            f"{tail:.4g}: the model is trained to make the right answers less likely; {seen}.",
            "Negate it (`loss = -log_probs.gather(1, y[:, None]).mean()`), or use `F.nll_loss(log_probs, y)` / "
            "`F.cross_entropy(logits, y)`, which carry the minus sign.",
            data,
        ), None
    # A loss that can never be negative but is: the optimizer minimises the negated objective.
    if nonnegative and tail < 0:
        return Verdict(
            "negative",
            f"The training loss went from {head:.4g} to {tail:.4g}, below zero, although the loss function cannot be "
            f"negative: the objective is sign-flipped and the model is pushed to make its errors larger; {seen}.",
            "Return the loss itself from training_step, not its negation (look for a stray minus sign or "
            "`maximize=True` in the optimizer).",
            data,
        ), None
    # Falling without bound below zero, an order of magnitude past its start: without knowing the loss function
    # this is the same sign flip (a bounded negative loss such as a Gaussian NLL stops within a few units).
    trend_late = rank_correlation(late)
    if tail < -10 * max(abs(head), 1.0) and trend_late < -RISE_CORRELATION:
        return Verdict(
            "negative",
            f"The training loss keeps falling without bound, from {head:.4g} to {tail:.4g}: a sign-flipped objective "
            f"(maximising the error) looks like this; {seen}.",
            "Check the sign of the loss returned from training_step and of every term added to it.",
            data,
        ), None

    trend = rank_correlation(values)
    data["rank_correlation"] = round(trend, 3)
    # Steady (rank-correlated with time) and ending at twice the start: by the median of the tail, or by its mean
    # when the climb steepens at the very end (the median lags there, and the climb is no early explosion).
    last = values[-max(5, n // 5):]
    data["tail_mean"] = round(sum(last) / len(last), 6)
    if head > 0 and trend >= RISE_CORRELATION and max(tail, data["tail_mean"]) >= rise_factor * head:
        return Verdict(
            "rising",
            f"The training loss rose steadily from {head:.4g} to {tail:.4g} ({tail / head:.1f}x): the optimizer is "
            f"making it worse, as with a flipped sign (gradient ascent) or a learning rate far too high; {seen}.",
            "Check the sign of the loss and of any gradient manipulation, that the optimizer minimises "
            "(`maximize=False`), and lower the learning rate by 10x.",
            data,
        ), None

    scale = max(abs(head), 1e-12)
    flat = abs(head - tail) <= flat_margin * scale
    constant = max(values) - min(values) <= 1e-7 * scale + 1e-12
    # A loss still falling steadily at the end is learning, only slowly (a small learning rate, a short run):
    # the verdicts below are for a loss that has stopped at the baseline, as with shuffled labels.
    # Only a loss that has come down overall can be "slow": one that ends above where it started is not learning.
    still_falling = trend_late < -STILL_FALLING_CORRELATION and tail < head
    learning = still_falling or val_learning or (
        baseline is not None and tail < (1 - LEARNING_BELOW_BASELINE) * baseline
        and _block_trend(values, LEARNING_BLOCKS) <= -LEARNING_CORRELATION)
    # Slow but learning is no excuse once the planned run is over and its end still averages at or above the best
    # constant prediction (not merely within noise of it: a cautious fine-tune ends a few percent below, falling).
    if learning and progress is not None and progress >= 1.0 and baseline is not None and baseline > 0:
        tail_values = values[-max(5, n // 5):]
        learning = sum(tail_values) / len(tail_values) < baseline
    data["late_rank_correlation"] = round(trend_late, 3)
    explosion = early_explosion(values, start, baseline)
    spike: Optional[Verdict] = None
    if explosion is not None and not constant:
        brief = brief_explosion(explosion, values, start, tail, baseline)
        words = explosion_words(explosion, start, tail, baseline, seen, data, batches_per_value, brief=brief)
        if not brief:
            return Verdict("exploded", *words, data), None
        # Back within the first fifth of the run and ending far below its start: a note, and the other patterns still judged.
        spike = Verdict("exploded", *words, data, severity="info")
    near_baseline = (baseline is not None and baseline > 0 and tail > (1 - baseline_margin) * baseline
                     and not learning)
    if constant or (flat and near_baseline):
        data["constant"] = constant
        if constant:
            message = (f"The training loss stayed exactly constant at {head:.4g} from the start: nothing the model "
                       f"does changes it; {seen}.")
        else:
            message = (f"The training loss stayed flat from the start ({head:.4g} -> {tail:.4g}) at or above the "
                       f"input-independent baseline {baseline:.4g}: the model is not learning; {seen}.")
        return Verdict(
            "flat",
            message,
            "Check that the optimizer holds the model's parameters, that the loss is not multiplied by zero or "
            "detached, and raise the learning rate (try 10x) if it is tiny; if all that is right, check that inputs "
            "and labels stay paired and that inputs are not zeroed.",
            data,
        ), None

    # Strong oscillation, on losses averaged over enough samples that sampling alone does not make the jumps.
    oscillation = judge_oscillation(values, baseline, seen, data, window=oscillation_window,
                                    batches_per_value=batches_per_value)
    if oscillation is not None:
        return oscillation, None

    if near_baseline and (progress is None or progress >= baseline_min_progress):
        stuck = abs(trend_late) < STUCK_CORRELATION and progress is not None and progress >= STUCK_MIN_PROGRESS
        meaning = ("the model is not using its inputs" if stuck
                   else "the model has learned nothing its inputs tell yet (it may only be slow)")
        return Verdict(
            "baseline",
            f"The training loss never got clearly below the input-independent baseline: {tail:.4g} at the end vs "
            f"{baseline:.4g} for the best constant prediction; {meaning}; {seen}.",
            "Check that inputs and labels stay paired (no separate shuffling of labels), that inputs are not zeroed "
            "or constant after preprocessing, and that the model's forward actually uses its input.",
            data,
        ), None
    return spike, None

"""Schedulers the run configured but drives the wrong way: two more ``lr-schedule`` judgements.

- ``plateau-mode``: a ``ReduceLROnPlateau`` whose ``mode`` contradicts what its monitored metric's name says is
  better (``mode="min"`` on ``val_f1``, ``mode="max"`` on ``val_loss``): it counts every improvement as a bad epoch.
  A warning when the run shows it: the scheduler cut the rate at a step where the metric was the best so far in
  the direction its name gives; an info when the run has not shown it yet.
- ``never-stepped``: under manual optimization Lightning steps no scheduler; one whose ``last_epoch`` never moved
  over a run of at least :data:`MIN_EPOCHS` epochs left the rate where its construction put it. A warning when
  that rate is at most :data:`STUCK_RATIO` of the optimizer's base rate (a warm-up that never started), an info
  when the scheduler would have changed the rate otherwise.

Example::

    >>> metric_direction("val_f1"), metric_direction("val/loss"), metric_direction("valAcc_gap")
    ('max', 'min', None)
    >>> judge_plateau_mode("val_f1", "min", [(None, 1e-3), (0.5, 1e-3), (0.6, 1e-3), (0.7, 3e-4)], "opt").kind
    'plateau-mode'
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional, Sequence

from lightning_sanity.checks.verdict import Verdict

#: Name tokens of metrics where higher is better (scores) and lower is better (losses and errors), as the
#: libraries name them (torchmetrics, sklearn.metrics, Lightning examples). A name with tokens of both kinds, or
#: with a token that turns or blurs its direction (a negation, a gap between two values), gives no direction.
HIGHER_IS_BETTER = frozenset({
    "acc", "accuracy", "f1", "fbeta", "f2", "auc", "auroc", "roc", "auprc", "ap", "map", "precision", "prec",
    "recall", "iou", "miou", "jaccard", "dice", "r2", "bleu", "rouge", "rougel", "meteor", "chrf", "psnr", "ssim",
    "ndcg", "mrr", "hits", "hitrate", "top1", "top5", "kappa", "mcc", "specificity", "sensitivity", "tpr",
    "spearman", "pearson", "corr", "cindex", "concordance", "reward",
})
LOWER_IS_BETTER = frozenset({
    "loss", "error", "err", "mse", "mae", "rmse", "msle", "mape", "smape", "nll", "ppl", "perplexity", "wer", "cer",
    "fid", "lpips", "bpd", "bpc", "ce", "xent", "crossentropy", "bce", "kl", "kld", "huber", "l1", "regret", "eer", "fpr", "fnr", "brier", "ece",
})
NO_DIRECTION = frozenset({
    "neg", "negative", "minus", "inv", "inverse", "reciprocal", "gap", "diff", "delta", "change", "std", "var",
    "improvement", "drop", "gain",
})
#: Under manual optimization, a scheduler judged unstepped only over at least this many training epochs: whatever
#: the cadence the user steps it at (each step, each epoch in any epoch hook), it would have moved by then.
MIN_EPOCHS = 2
#: A rate stuck at or below this fraction of the optimizer's base rate trained the whole run an order of
#: magnitude slower than configured (a warm-up's first value); above it the unstepped scheduler is worth an info.
STUCK_RATIO = 0.1


def _tokens(name: str) -> list[str]:
    """Lower-case words of a metric name: split at separators and camelCase, each also without trailing digits."""
    words = []
    for piece in re.split(r"[^0-9A-Za-z]+", name):
        for part in {piece, *re.sub(r"(?<=[a-z])(?=[A-Z])", " ", piece).split()}:
            part = part.lower()
            if part:
                words += [part, part.rstrip("0123456789")]
    return [w for w in words if w]


def metric_direction(name: Optional[str]) -> Optional[str]:
    """``"max"`` for a metric whose name says higher is better, ``"min"`` for lower, None when it does not say."""
    if not name:
        return None
    words = set(_tokens(name))
    if words & NO_DIRECTION:
        return None
    up, down = bool(words & HIGHER_IS_BETTER), bool(words & LOWER_IS_BETTER)
    return "max" if up and not down else "min" if down and not up else None


def _better(a: float, b: float, direction: str) -> bool:
    return a > b if direction == "max" else a < b


def judge_plateau_mode(monitor: str, mode: str, samples: Sequence[tuple[Optional[float], float]],
                       where: str) -> Optional[Verdict]:
    """A plateau scheduler whose ``mode`` contradicts its metric's name; None when they agree or the name is mute.

    ``samples``: (the metric the scheduler stepped with, the rate after that step), in order; the first entry's
    rate is the rate before the first step (its metric None).
    """
    direction = metric_direction(monitor)
    if direction is None or mode not in ("min", "max") or mode == direction:
        return None
    cuts = cuts_at_best = 0
    best: Optional[float] = None
    metrics = [m for m, _ in samples if m is not None and math.isfinite(m)]
    for (_, before), (metric, after) in zip(samples, samples[1:]):
        if metric is None or not math.isfinite(metric):
            continue
        cut = after < before * (1 - 1e-9)
        cuts += cut
        # A cut where the metric is the best of the run so far in its name's direction: the scheduler counted
        # an improvement as a bad epoch (a plateau or a real decline never sets a new best).
        cuts_at_best += cut and best is not None and _better(metric, best, direction)
        best = metric if best is None or _better(metric, best, direction) else best
    kind = "a score (higher is better)" if direction == "max" else "a loss or an error (lower is better)"
    rates = [lr for _, lr in samples]
    data = {"monitor": monitor, "mode": mode, "expected_mode": direction, "cuts": cuts,
            "cuts_at_best": cuts_at_best, "first_metric": metrics[0] if metrics else None,
            "last_metric": metrics[-1] if metrics else None, "initial_lr": rates[0] if rates else None,
            "last_lr": rates[-1] if rates else None}
    shown = ""
    if metrics and rates:
        shown = (f" It cut the rate {cuts} time(s) ({rates[0]:.3g} -> {rates[-1]:.3g}), {cuts_at_best} of them at a "
                 f"step where `{monitor}` was the best so far ({metrics[0]:.4g} -> {metrics[-1]:.4g}).")
    message = (f"ReduceLROnPlateau on {where} watches `{monitor}` with mode='{mode}', but `{monitor}` is {kind}: "
               f"every improvement counts as a bad epoch and the rate is cut while the model still learns.{shown}")
    advice = (f"Set mode='{direction}' on the ReduceLROnPlateau (mode='max' for accuracy, F1, AUC and other "
              "scores; mode='min', the default, for losses and errors).")
    return Verdict("plateau-mode", message, advice, data, severity="warning" if cuts_at_best else "info")


def _constant_by_design(scheduler: Any) -> bool:
    """A scheduler whose steps would never change the rate (``ConstantLR(factor=1)``, a lambda of 1, gamma 1)."""
    name = type(scheduler).__name__
    if name == "ConstantLR":
        return getattr(scheduler, "factor", 0) == 1 or getattr(scheduler, "total_iters", 1) == 0
    if name in ("StepLR", "MultiStepLR", "ExponentialLR"):
        return getattr(scheduler, "gamma", 0) == 1
    if name in ("LambdaLR", "MultiplicativeLR"):
        neutral = None if name == "LambdaLR" else 1.0  # LambdaLR scales the base rate, MultiplicativeLR the last
        try:
            for fn in scheduler.lr_lambdas:
                values = {float(fn(k)) for k in (0, 1, 10, 100, 1000, 10000)}
                if len(values) > 1 or (neutral is not None and values != {neutral}):
                    return False
            return True
        except Exception:  # a lambda that cannot be probed: assume it changes the rate
            return False
    return False


def judge_never_stepped(scheduler: Any, where: str, *, lr: float, base_lr: float, epochs: int,
                        batches: int) -> Optional[Verdict]:
    """A scheduler never stepped under manual optimization over ``epochs`` epochs, its group's rate ``lr`` all run.

    ``base_lr``: the rate the schedule was to reach (its ``base_lrs`` entry, or a cyclic schedule's peak). None
    for a short run, a scheduler constant by design (even at a fraction of the base rate: what it sets is meant),
    or a rate of 0."""
    if epochs < MIN_EPOCHS or not (base_lr > 0) or not (lr > 0) or not math.isfinite(lr):
        return None
    if _constant_by_design(scheduler):
        return None  # stepping it would not change the rate
    ratio = lr / base_lr
    name = type(scheduler).__name__
    data = {"scheduler": name, "last_epoch": getattr(scheduler, "last_epoch", None), "lr": lr, "base_lr": base_lr,
            "ratio": ratio, "epochs": epochs, "batches": batches}
    advice = ("Under manual optimization Lightning steps no scheduler: call `sch = self.lr_schedulers()` and "
              "`sch.step()` in training_step after `opt.step()` (per-step schedules) or at the epoch's end "
              "(per-epoch schedules); the 'interval' key is ignored.")
    head = (f"The {name} of {where} was never stepped over {epochs} epochs ({batches} batches) of manual "
            f"optimization (its last_epoch did not move)")
    if ratio <= STUCK_RATIO:
        return Verdict(
            "never-stepped",
            f"{head}: the rate stayed at {lr:.3g} all run, {ratio:.2%} of the rate the schedule was to reach ({base_lr:.3g}): "
            "the warm-up never started and the model trained at a fraction of its learning rate.",
            advice, data)
    return Verdict(
        "never-stepped",
        f"{head}: the rate stayed at {lr:.3g} ({ratio:.0%} of the rate the schedule was to reach, {base_lr:.3g}) "
        "and the schedule never "
        "ran.", advice, data, severity="info")

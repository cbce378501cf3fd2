"""``val-divergence``'s model gap: the logged validation loss against the same model's loss on validation samples
computed the training way (the fixed batch that prediction dynamics evaluates, in eval mode, at the same step).

Both figures come from the same weights and the same split, so they estimate the same mean unless
``validation_step`` computes something other than the model applied to the batch: test-time augmentation the
model was not trained for (flipped digits), a preprocessing applied inside the step, another label map. A logged
loss far *lower* is harmless (no label smoothing or auxiliary terms in validation, a TTA that helps); only a
gross excess fires, beyond all of:

- the sampling noise of both means (per-sample losses of the fixed batch give the standard deviation);
- ``GAP_SHARE`` of the input-independent baseline (a large share of "knowing nothing");
- the training loss itself: a regulariser or auxiliary term logged in validation is part of the training loss,
  so it cannot add more than that;
- what the training loss's reduction could change: the training-way loss is taken with the training loss's own
  label smoothing and class weights, and unweighted, whichever is larger.

Example::

    >>> import torch
    >>> probs = torch.full((64, 10), 0.002).scatter(1, torch.arange(64)[:, None] % 10, 0.982)
    >>> targets = torch.arange(64) % 10
    >>> judge_model_gap(1.28, probs, targets, baseline=2.303, train_loss=0.02, val_rows=357).kind
    'model-gap'
    >>> judge_model_gap(0.05, probs, targets, baseline=2.303, train_loss=0.02, val_rows=357) is None
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch

from lightning_sanity.checks.validation import Divergence

#: The logged validation loss must exceed the training-way loss by this share of the input-independent baseline:
#: label smoothing 0.1 logged in validation only on a 10-class task adds about 0.4 nats = 17 % of ln 10.
GAP_SHARE = 0.3
#: ... and by this many standard errors of the difference (one-sided, far beyond chance).
STANDARD_ERRORS = 4.0
#: Fewest fixed-batch samples to judge from.
MIN_SAMPLES = 16
#: The fixed batch must hold at least this share of the classes a random draw of its size would hold: a validation
#: split sorted by class puts one easy class in its first batch, which says nothing about the split's mean.
CLASS_COVERAGE = 0.8


def per_sample_losses(probs: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0,
                      weight: Optional[Sequence[float]] = None) -> Optional[torch.Tensor]:
    """The cross-entropy of each sample, the training loss's way, or None when it cannot be told: with label
    smoothing ``smoothing``, and with class weights as a weighted mean does (each loss scaled by ``w_y / mean w_y``).

    >>> p = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    >>> [round(v, 3) for v in per_sample_losses(p, torch.tensor([0, 0])).tolist()]
    [0.693, 0.105]
    """
    if probs.dim() != 2 or targets.dim() != 1 or probs.shape[0] != targets.shape[0]:
        return None
    log_p = probs.double().clamp_min(1e-12).log()
    keep = (targets >= 0) & (targets < probs.shape[1])
    if not bool(keep.any()):
        return None
    log_p, t = log_p[keep], targets[keep].long()
    losses = -log_p.gather(1, t[:, None])[:, 0]
    if smoothing:
        losses = (1 - smoothing) * losses - smoothing * log_p.mean(1)
    if weight is not None and len(weight) == probs.shape[1]:
        w = torch.tensor(list(weight), dtype=losses.dtype)[t]
        if float(w.mean()) > 0:
            losses = losses * w / w.mean()
    return losses


def covers_classes(targets: torch.Tensor, classes: int, prior: Optional[Sequence[float]] = None) -> bool:
    """Whether ``targets`` hold as many distinct classes as a random draw of their size would, within
    ``CLASS_COVERAGE`` (expected from the label ``prior``, uniform without one).

    >>> covers_classes(torch.arange(64) % 10, 10), covers_classes(torch.zeros(64, dtype=torch.long), 10)
    (True, False)
    """
    n = int(targets.numel())
    p = list(prior) if prior is not None and len(prior) == classes else [1.0 / max(classes, 1)] * classes
    expected = sum(1 - (1 - float(q)) ** n for q in p if q > 0)
    return int(targets.unique().numel()) >= CLASS_COVERAGE * expected


def judge_model_gap(val_loss: float, probs: torch.Tensor, targets: torch.Tensor, baseline: float,
                    train_loss: float, val_rows: int = 0, smoothing: float = 0.0,
                    weight: Optional[Sequence[float]] = None,
                    prior: Optional[Sequence[float]] = None) -> Optional[Divergence]:
    """The logged ``val_loss`` against the fixed batch's training-way loss (``probs``, ``targets`` on the CPU)."""
    if not (math.isfinite(val_loss) and math.isfinite(baseline) and baseline > 0 and math.isfinite(train_loss)):
        return None
    if probs.dim() != 2 or not covers_classes(targets, probs.shape[1], prior):
        return None
    variants = [per_sample_losses(probs, targets)]
    if smoothing or weight is not None:
        variants.append(per_sample_losses(probs, targets, smoothing, weight))
    variants = [v for v in variants if v is not None and v.numel() >= MIN_SAMPLES and bool(torch.isfinite(v).all())]
    if not variants:
        return None
    losses = max(variants, key=lambda v: float(v.mean()))
    n, mean = int(losses.numel()), float(losses.mean())
    sd = float(losses.std()) if n > 1 else 0.0
    # The logged loss averages the whole split (``val_rows`` samples, the fixed batch among them): both means vary.
    error = sd * math.sqrt(1 / n + 1 / max(val_rows, n))
    gap = val_loss - mean
    bar = max(GAP_SHARE * baseline, STANDARD_ERRORS * error, max(train_loss, 0.0))
    if gap <= bar:
        return None
    data = {"val_loss": round(val_loss, 6), "training_way_loss": round(mean, 6), "standard_error": round(error, 6),
            "fixed_batch_samples": n, "baseline": round(baseline, 6), "train_loss": round(train_loss, 6)}
    return Divergence(
        "model-gap", "warning",
        f"The logged validation loss {val_loss:.3g} is far worse than the same model's loss on {n} validation "
        f"samples computed the way it trains ({mean:.3g} +- {error:.2g}, evaluated at the same step in eval mode): "
        "`validation_step` computes something other than the model applied to the batch.",
        "Compare `validation_step` with `training_step`: test-time augmentation the model was not trained for "
        "(flips or rotations of images whose orientation matters), inputs preprocessed or normalised inside the "
        "step, a different label map, a model copy (EMA) validated instead of the trained one.",
        data,
    )

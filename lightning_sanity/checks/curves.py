"""Reading the loss curves of the verdict recipes (overfit one batch, input-independent baseline).

Pure functions on lists of floats and on tensors, no Trainer. The recipes in :mod:`lightning_sanity.recipes`
train, these functions judge.

The failure modes follow the practice of "overfit a single batch": on one fixed batch a correct model and
training loop drive the loss to its floor. When they do not, the shape of the curve says where to look:

- ``rises``: the loss climbs steadily (or falls below its floor without bound): a flipped sign, gradient ascent.
- ``non-finite``: the loss became NaN or Inf: numerics, or a learning rate far too high.
- ``explodes``: the loss spiked far above where it started: learning rate too high, or numerics.
- ``oscillates``: the loss jumps up and down without settling: learning rate too high, labels misaligned.
- ``plateaus``: the loss stopped moving above its floor: learning rate too low, too much regularization,
  optimizer not reaching the weights, wrong loss, broken data pipeline.
- ``slow``: the loss is still falling steadily when the step budget ends: not a bug yet; run longer.

Example::

    >>> read_overfit_curve([2.3, 2.5, 2.8, 3.2, 3.9, 4.6, 5.5, 6.3]).mode
    'rises'
    >>> read_overfit_curve([2.3] * 40).mode
    'plateaus'
    >>> read_overfit_curve([2.3, 40.0, 9.0, 2.4, 2.3, 2.3]).mode
    'explodes'
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import torch

#: The failure modes :func:`read_overfit_curve` can return.
FAILURE_MODES = ("rises", "non-finite", "explodes", "oscillates", "plateaus", "slow")

# A steady rise: at least this share of the steps go up. Gradient ascent on a fixed batch goes up at almost
# every step (measured: 100 % of steps for Adam with `maximize=True` on digits); a healthy curve on a fixed batch
# goes down at almost every step, so 70 % leaves a wide margin either way.
STEADY_SHARE = 0.7
# A spike: the loss went above 3x its distance from the floor at the start. A healthy optimizer on one fixed
# batch never climbs above the initial loss by more than noise (measured on MLP/CNN with Adam and SGD at sane
# learning rates); a learning rate 100x too high spikes to 4x-10,000x within a few steps.
SPIKE_FACTOR = 3.0
# Oscillation: over the second half of the curve, the loss travels at least 4x farther than it progresses, and
# the average step-to-step change is at least 2 % of the loss level (below that it is noise on a plateau).
OSCILLATION_TRAVEL = 4.0
OSCILLATION_AMPLITUDE = 0.02
# Still falling: the second half of the curve cut the remaining distance to the floor by at least 10 %.
SLOW_PROGRESS = 0.10


@dataclasses.dataclass
class CurveReading:
    """What a loss curve shows: one of :data:`FAILURE_MODES`, and the figures behind it."""

    mode: str
    figures: dict[str, Any]


def _smoothed_end(values: list[float]) -> float:
    k = max(1, len(values) // 10)
    return sum(values[-k:]) / k


def read_overfit_curve(losses: list[float], floor: float = 0.0) -> CurveReading:
    """The failure mode of a loss curve that did not reach its floor.

    Args:
        losses: the training loss at each step, first step first.
        floor: the lowest loss the task allows (0 for cross-entropy and mean squared error).

    Returns:
        The mode and the figures it was read from (``initial``, ``final``, ``peak``, ...).

    Raises:
        ValueError: ``losses`` is empty.
    """
    if not losses:
        raise ValueError("`losses` is empty; the recipe ran no step.")
    figures: dict[str, Any] = {"steps": len(losses), "initial": losses[0]}
    bad = next((i for i, v in enumerate(losses) if not math.isfinite(v)), None)
    if bad is not None:
        figures.update(first_non_finite_step=bad, value=str(losses[bad]))
        return CurveReading("non-finite", figures)
    first = losses[0]
    scale = max(abs(first - floor), 1e-12)
    final = _smoothed_end(losses)
    peak = max(losses)
    figures.update(final=final, peak=peak, peak_step=losses.index(peak))
    diffs = [b - a for a, b in zip(losses, losses[1:])]
    tiny = 1e-9 * scale
    ups = sum(d > tiny for d in diffs) / max(len(diffs), 1)
    downs = sum(d < -tiny for d in diffs) / max(len(diffs), 1)
    figures.update(share_up=round(ups, 3))
    if len(diffs) >= 4:
        if ups >= STEADY_SHARE and final - first > 0.1 * scale and final >= first + 0.5 * (peak - first):
            return CurveReading("rises", figures)
        # The loss sinks ever further below its floor: what is minimised is the negative of an error (a flipped
        # sign), or a loss with no lower bound such as nll_loss on raw logits. The error itself rises.
        if downs >= STEADY_SHARE and final < floor - max(scale, 1.0) and final < first - 2 * scale:
            figures["below_floor"] = True
            return CurveReading("rises", figures)
    if peak - floor > SPIKE_FACTOR * scale and peak > first:
        return CurveReading("explodes", figures)
    half = losses[len(losses) // 2:]
    k = max(1, len(half) // 10)
    start, end = sum(half[:k]) / k, sum(half[-k:]) / k
    travel = sum(abs(b - a) for a, b in zip(half, half[1:]))
    net = abs(start - end)
    level = max(sorted(abs(v - floor) for v in half)[len(half) // 2], 1e-12)
    amplitude = travel / max(len(half) - 1, 1) / level
    figures.update(second_half_travel=travel, second_half_net=net, amplitude=round(amplitude, 4))
    if len(half) >= 4 and travel >= OSCILLATION_TRAVEL * max(net, 1e-12) and amplitude >= OSCILLATION_AMPLITUDE:
        return CurveReading("oscillates", figures)
    if start - end > SLOW_PROGRESS * max(start - floor, 1e-12):
        return CurveReading("slow", figures)
    return CurveReading("plateaus", figures)


def reached_floor(loss: float, initial: float, floor: float = 0.0, tolerance: float = 0.05) -> bool:
    """Whether ``loss`` closed all but ``tolerance`` of the distance from ``initial`` down to ``floor``.

    >>> reached_floor(0.05, 2.3), reached_floor(0.5, 2.3), reached_floor(-40.0, 2.3)
    (True, False, False)
    """
    if not math.isfinite(loss):
        return False
    # Far below the floor is not "reached": that is a loss without a lower bound (or with a flipped sign).
    return abs(loss - floor) <= tolerance * max(initial - floor, 0.0) + 1e-8


def label_entropy(target: torch.Tensor) -> Optional[float]:
    """Entropy (nats) of the class frequencies in ``target``: the cross-entropy of a model that learnt only them.

    >>> round(label_entropy(torch.tensor([0, 1, 0, 1])), 4)
    0.6931
    """
    if not isinstance(target, torch.Tensor) or target.dtype.is_floating_point or target.numel() == 0:
        return None
    values = target[target >= 0].flatten()
    if values.numel() == 0:
        return None
    p = torch.unique(values, return_counts=True)[1].double() / values.numel()
    return float(-(p * p.log()).sum())


def predicted_labels(output: Any, target: Any) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """``(predicted, expected)`` label tensors when ``output``/``target`` look like a classification, else None.

    Recognised: logits ``(..., C)`` with integer targets ``(...)`` (multi-class, also per token), logits
    ``(B, C, ...)`` with targets ``(B, ...)`` (cross-entropy's class-in-dim-1 layout), and one score per sample
    ``(B,)``/``(B, 1)`` with targets in {0, 1} (binary; threshold 0 for logits, 0.5 for probabilities).
    Targets below zero (``ignore_index=-100``) are left out.

    >>> p, e = predicted_labels(torch.tensor([[2.0, -1.0], [0.0, 3.0]]), torch.tensor([0, 1]))
    >>> p.tolist(), e.tolist()
    ([0, 1], [0, 1])
    """
    if not isinstance(output, torch.Tensor) or not isinstance(target, torch.Tensor):
        return None
    if not output.dtype.is_floating_point or output.dim() == 0 or target.dim() == 0:
        return None
    output, target = output.detach(), target.detach()
    if not target.dtype.is_floating_point and not target.dtype == torch.bool:
        predicted, classes = None, 0
        if output.dim() == target.dim() + 1 and output.shape[:-1] == target.shape and output.shape[-1] > 1:
            predicted, classes = output.argmax(-1), output.shape[-1]
        elif output.dim() == target.dim() + 1 and output.shape[0] == target.shape[0] and (
            output.shape[2:] == target.shape[1:] and output.shape[1] > 1
        ):
            predicted, classes = output.argmax(1), output.shape[1]
        if predicted is not None:
            keep = target >= 0
            if int(keep.sum()) == 0 or int(target[keep].max()) >= classes:
                return None
            return predicted[keep], target[keep].long()
    # Binary: one score per sample, targets 0/1.
    scores = output.reshape(output.shape[0], -1) if output.dim() > 1 else output.reshape(-1, 1)
    if scores.shape[1] != 1 or scores.shape[0] != target.shape[0] or target.numel() != target.shape[0]:
        return None
    expected = target.reshape(-1).float()
    if not bool(((expected == 0) | (expected == 1)).all()):
        return None
    threshold = 0.5 if bool(((scores >= 0) & (scores <= 1)).all()) else 0.0
    return (scores.reshape(-1) > threshold).long(), expected.long()


def varies_across_batch(tensor: Any, rtol: float = 1e-6) -> Optional[bool]:
    """Whether a batch of outputs (or inputs) differs between samples; None when it is not a batched float tensor.

    >>> varies_across_batch(torch.ones(4, 3)), varies_across_batch(torch.randn(4, 3))
    (False, True)
    """
    if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0 or tensor.shape[0] < 2:
        return None
    flat = tensor.detach().reshape(tensor.shape[0], -1).double()
    spread = (flat - flat[:1]).abs().max()
    return bool(spread > rtol * (flat.abs().max() + 1e-12))


def clearly_better(real: float, zeroed: float, floor: float = 0.0, margin: float = 0.9) -> bool:
    """Whether the real-input loss beats the zeroed-input loss by more than ``1 - margin`` of its distance to floor.

    >>> clearly_better(0.4, 2.3), clearly_better(2.2, 2.3)
    (True, False)
    """
    if not (math.isfinite(real) and math.isfinite(zeroed)):
        return False
    return real - floor < margin * (zeroed - floor)

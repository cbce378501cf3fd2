"""Reading a model's output on a fixed batch: what kind of prediction it is (classification, binary, regression,
sequence), its probabilities, classes and targets, the fixed batch's loss and accuracy, and whether two outputs
agree or all samples got the same one.

Pure functions on tensors, no Trainer: :class:`~lightning_sanity.callbacks.predictions.PredictionDynamics` calls
them at each snapshot (``prediction-jitter``, ``constant-output`` during training, ``train-mode``).

Example::

    >>> import torch
    >>> output_kind(torch.zeros(4, 10), torch.tensor([1, 2, 3, 4]))
    'classification'
    >>> true_class_probability(torch.tensor([[0.7, 0.3], [0.4, 0.6]]), torch.tensor([0, 0]), "classification")
    tensor([0.7000, 0.4000])
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

#: How a model's output on the fixed batch is read.
KINDS = ("classification", "binary", "regression", "sequence")

# ------------------------------------------------------------------------------------------------ reading outputs

_CE_WORDS = ("cross_entropy", "cross-entropy", "crossentropy", "nll", "softmax", "multiclass", "categorical")
_BINARY_WORDS = ("binary", "bce", "logistic", "sigmoid", "multilabel")
_REGRESSION_WORDS = ("mse", "mean_squared", "l1", "mae", "huber", "smooth_l1")
_NONNEGATIVE_WORDS = (*_CE_WORDS, *_BINARY_WORDS, *_REGRESSION_WORDS, "kl")


def loss_kind_is(loss_kind: Any, family: str) -> bool:
    """Whether the free-form ``loss_kind`` fact (e.g. ``"cross_entropy"``, ``"bce_with_logits"``) names ``family``.

    ``family`` is ``"cross_entropy"``, ``"binary"``, ``"regression"`` or ``"nonnegative"`` (a loss that can never
    go below zero).

    >>> loss_kind_is("bce_with_logits", "binary"), loss_kind_is("cross_entropy", "binary")
    (True, False)
    """
    if not isinstance(loss_kind, str):
        return False
    text = loss_kind.lower()
    words = {"cross_entropy": _CE_WORDS, "binary": _BINARY_WORDS, "regression": _REGRESSION_WORDS,
             "nonnegative": _NONNEGATIVE_WORDS}[family]
    if family == "cross_entropy" and any(w in text for w in _BINARY_WORDS):
        return False
    return any(w in text for w in words)


def output_kind(output: torch.Tensor, target: Optional[torch.Tensor], loss_kind: Any = None) -> Optional[str]:
    """How to read a model output of this shape: one of :data:`KINDS`, or None when it cannot be interpreted.

    (B, C) logits are classification only with evidence: (B,) integer targets in ``[0, C)`` (unless every row has
    unit norm: a normalised embedding for a metric loss), or a cross-entropy loss kind; without a target or a
    classification loss, a (B, K) or larger output (an autoencoder's reconstruction) is regression-like. (B,) or
    (B, 1) are regression, or binary when the targets are 0/1 and the loss kind says binary; (B, T, C) with (B, T)
    integer targets (or no target and a cross-entropy loss) is a sequence; an output with the target's own floating
    shape is regression.

    >>> output_kind(torch.zeros(4, 10), torch.tensor([1, 2, 3, 4]))
    'classification'
    >>> output_kind(torch.zeros(4, 1), torch.tensor([0.0, 1.0, 1.0, 0.0]), "bce_with_logits")
    'binary'
    >>> output_kind(torch.zeros(4), torch.tensor([0.3, 1.5, 2.0, 0.1]))
    'regression'
    >>> tags = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # multi-hot, through a hand-written focal loss (kind unknown)
    >>> logits = torch.tensor([[-2.0, 1.5], [0.7, -0.3]])
    >>> output_kind(logits, tags), output_kind(logits, tags, "mse")
    ('binary', 'regression')
    >>> output_kind(torch.zeros(4, 64), None), output_kind(torch.zeros(4, 10), None, "cross_entropy")
    ('regression', 'classification')
    >>> output_kind(torch.nn.functional.normalize(torch.ones(4, 10), dim=1), torch.tensor([1, 2, 3, 4]))
    'regression'
    """
    if not isinstance(output, torch.Tensor) or not output.is_floating_point() or output.dim() == 0:
        return None
    b = output.shape[0]
    if b < 1 or output.numel() == 0:
        return None
    float_target = isinstance(target, torch.Tensor) and target.is_floating_point()
    if output.dim() == 1 or (output.dim() == 2 and output.shape[1] == 1):
        if _is_binary_target(target) and (loss_kind_is(loss_kind, "binary")
                                          or _logits_of_unknown_loss(output, loss_kind)):
            return "binary"
        return "regression"
    if float_target and tuple(target.shape) == tuple(output.shape):
        if loss_kind_is(loss_kind, "cross_entropy"):
            return "classification" if output.dim() == 2 else None  # soft labels
        if loss_kind_is(loss_kind, "binary") or (_is_binary_target(target)
                                                 and _logits_of_unknown_loss(output, loss_kind)):
            return "binary"  # multi-label
        return "regression"
    # Class-wise readings (argmax, flips) need evidence: integer targets indexing the output's classes, or a
    # classification loss. Without it a (B, K) output is as likely reconstructed pixels or K regression values
    # (an autoencoder's batch has no target at all), and K-way argmax flips of those would be noise.
    ce_loss = loss_kind_is(loss_kind, "cross_entropy")
    int_target = isinstance(target, torch.Tensor) and not float_target and not target.dtype == torch.bool
    if output.dim() == 2:
        if ce_loss or (int_target and _indexes_classes(target, output.shape[0], output.shape[1])
                       and not _unit_rows(output)):
            return "classification"
        return "regression"
    if output.dim() == 3 and output.shape[-1] == 1:
        return "regression"
    if output.dim() >= 3:
        if int_target or (target is None and ce_loss):
            return "sequence"
        return "regression" if target is None else None
    return None


def _indexes_classes(target: torch.Tensor, samples: int, classes: int) -> bool:
    """Whether ``target`` is (B,) class indices in ``[0, classes)`` (soft labels are handled by the caller)."""
    if target.dim() != 1 or target.shape[0] != samples or target.numel() == 0:
        return False
    return bool(((target >= 0) & (target < classes)).all())


def _unit_rows(output: torch.Tensor) -> bool:
    """Whether every row of a (B, K) output has unit L2 norm: an embedding normalised for a metric loss (triplet,
    contrastive), whose integer labels name identities, not its K coordinates. Logits are never held to a norm of
    one (a cosine classifier scales its cosines), so without a classification loss such an output is no class
    scores, and argmax flips of its coordinates would be noise."""
    norms = output.detach().float().norm(dim=1)
    return bool(((norms - 1).abs() < 1e-3).all())


def _logits_of_unknown_loss(output: torch.Tensor, loss_kind: Any) -> bool:
    """0/1 targets against outputs outside [0, 1], through a loss that is no regression loss the suite knows (a
    focal or asymmetric loss written by hand): logits, read through a sigmoid. Their magnitude keeps growing as the
    model grows confident, so changes in target units would read settling predictions as jitter."""
    if loss_kind_is(loss_kind, "regression"):
        return False
    out = output.detach()
    return bool(((out < 0) | (out > 1)).any())


def _is_binary_target(target: Optional[torch.Tensor]) -> bool:
    if not isinstance(target, torch.Tensor) or target.numel() == 0:
        return False
    return bool(((target == 0) | (target == 1)).all())


def as_sequence(output: torch.Tensor, target: Optional[torch.Tensor]) -> torch.Tensor:
    """A dense output as (B, T, C): (B, T, C) stays, (B, C, *S) with (B, *S) targets becomes (B, prod(S), C).

    >>> as_sequence(torch.zeros(2, 5, 3, 4), torch.zeros(2, 3, 4, dtype=torch.long)).shape
    torch.Size([2, 12, 5])
    """
    if output.dim() == 3 and (target is None or tuple(target.shape) == tuple(output.shape[:2])):
        return output
    if target is not None and output.dim() >= 3 and tuple(target.shape) == (output.shape[0], *output.shape[2:]):
        return output.flatten(2).transpose(1, 2)
    return output.flatten(1, -2) if output.dim() > 3 else output


def probabilities(output: torch.Tensor, kind: str, loss_kind: Any = None) -> torch.Tensor:
    """Class probabilities (classification, sequence: softmax over the last dim), positive-class probabilities
    (binary: sigmoid), or the raw output as float (regression).

    Outputs that already are probabilities (rows in [0, 1] summing to 1; log-probabilities go through softmax
    unchanged anyway) are taken as they are.
    """
    out = output.detach().float()
    if kind in ("classification", "sequence"):
        # Logits are told apart on a strided sample first: one value out of [0, 1] there settles it, and the pass
        # over a language model's whole (B, T, 32000) output is left to the softmax.
        sample = out[..., :: max(1, out.shape[-1] // 64)]  # a strided view: no copy of a non-contiguous output
        if sample.numel() and not bool(((sample >= 0) & (sample <= 1)).all()):
            return out.softmax(-1)
        low, high = torch.aminmax(out) if out.numel() else (torch.zeros(()), torch.zeros(()))  # one pass, no masks
        is_probs = bool(low >= 0 and high <= 1 and torch.allclose(out.sum(-1), torch.ones(()), atol=1e-3))
        return out if is_probs else out.softmax(-1)
    if kind == "binary":
        out = out.reshape(out.shape[0], -1)
        in_unit = bool((out >= 0).all() and (out <= 1).all())
        wants_logits = isinstance(loss_kind, str) and "logit" in loss_kind.lower()
        return out if in_unit and not wants_logits else out.sigmoid()
    return out.reshape(out.shape[0], -1)


def predicted_classes(probs: torch.Tensor, kind: str) -> Optional[torch.Tensor]:
    """Argmax class (classification: (B,), sequence: (B, T)), thresholded labels (binary), None (regression)."""
    if kind in ("classification", "sequence"):
        return probs.argmax(-1)
    if kind == "binary":
        return (probs > 0.5).long()
    return None


def usable_targets(target: Any, kind: str, probs: torch.Tensor) -> Optional[torch.Tensor]:
    """The targets in the form the prediction charts need, or None when they do not fit the output.

    Classification: (B,) class indices in range (soft labels become their argmax). Sequence: (B, T) indices,
    negative ones (padding, ``ignore_index=-100``) kept as they are. Binary: 0/1 of the output's shape. Regression:
    (B, K) floats.
    """
    if not isinstance(target, torch.Tensor) or target.shape[:1] != probs.shape[:1]:
        return None
    t = target.detach()
    if kind == "classification":
        if t.is_floating_point() and tuple(t.shape) == tuple(probs.shape):
            t = t.argmax(-1)
        if t.is_floating_point() or t.dim() != 1 or t.numel() == 0:
            return None
        return t.long() if bool((t >= 0).all() and (t < probs.shape[-1]).all()) else None
    if kind == "sequence":
        if t.is_floating_point():
            return None
        t = t.reshape(probs.shape[0], -1)
        if t.shape[1] != probs.shape[1]:
            return None
        return t.long() if bool((t < probs.shape[-1]).all()) else None
    if kind == "binary":
        t = t.reshape(probs.shape[0], -1).float()
        return t if t.shape == probs.shape and _is_binary_target(t) else None
    t = t.reshape(t.shape[0], -1).float()
    return t if t.shape == probs.shape else None


def true_class_probability(probs: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Each sample's probability of its true class, (B,): mean over valid tokens (sequence) or labels (binary).

    >>> true_class_probability(torch.tensor([[0.7, 0.3], [0.4, 0.6]]), torch.tensor([0, 0]), "classification")
    tensor([0.7000, 0.4000])
    """
    if kind == "classification":
        return probs.gather(-1, target[:, None])[:, 0]
    if kind == "sequence":
        valid = target >= 0
        p = probs.gather(-1, target.clamp_min(0)[..., None])[..., 0]
        return (p * valid).sum(1) / valid.sum(1).clamp_min(1)
    if kind == "binary":
        return (target * probs + (1 - target) * (1 - probs)).mean(1)
    raise ValueError(f"`kind` must be classification, sequence or binary, got {kind!r}.")


def fixed_batch_metrics(probs: torch.Tensor, target: torch.Tensor, kind: str,
                        classes: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
    """Loss (cross-entropy of the probabilities, or MSE) and accuracy of the fixed batch, as 0-d tensors;
    ``classes``: ``probs.argmax(-1)`` when the caller has it already (a pass over a large vocabulary saved)."""
    from torchmetrics.functional import mean_squared_error
    from torchmetrics.functional.classification import binary_accuracy

    if kind == "regression":
        return {"loss": mean_squared_error(probs, target)}
    if kind == "binary":
        p = probs.clamp(1e-7, 1 - 1e-7)
        loss = -(target * p.log() + (1 - target) * (1 - p).log()).mean()
        return {"loss": loss, "accuracy": binary_accuracy(probs, target.long(), validate_args=False)}
    # Micro accuracy is the share of correct predictions: counted directly, a snapshot's few kernels rather than
    # torchmetrics' per-class bookkeeping.
    p_true = true_class_probability(probs, target, kind) if kind == "classification" else None
    if kind == "classification":
        loss = -p_true.clamp_min(1e-12).log().mean()
        predicted = classes if classes is not None else probs.argmax(-1)
        return {"loss": loss, "accuracy": (predicted == target).float().mean()}
    valid = target >= 0  # padding and ignored positions (any negative index) count in neither figure
    token_p = probs.gather(-1, target.clamp_min(0)[..., None])[..., 0]
    count = valid.sum().clamp_min(1)
    loss = -(token_p.clamp_min(1e-12).log() * valid).sum() / count
    predicted = classes if classes is not None else probs.argmax(-1)
    return {"loss": loss, "accuracy": ((predicted == target) & valid).sum() / count}


# ------------------------------------------------------------------------------------------------ comparing outputs


def _tolerance(dtype: torch.dtype, rtol: Optional[float], ulps: int) -> float:
    # A few ulps of the output's own precision: bf16/fp16 outputs round far more coarsely than fp32.
    eps = torch.finfo(dtype).eps if dtype.is_floating_point else 0.0
    return max(rtol if rtol is not None else 1e-5, ulps * eps)


#: a wide output is first screened on this many evenly strided values (see :func:`probabilities` and
#: :func:`is_constant_across_samples`).
_SCREEN_VALUES = 4096
#: a strided sample whose samples differ by this many times its own tolerance is not constant, whatever the rest.
_CLEARLY_DIFFERENT = 1000.0


def is_constant_across_samples(values: torch.Tensor, rtol: Optional[float] = None, atol: float = 1e-7) -> bool:
    """Whether every sample (dim 0) has the same values, up to a tolerance relative to their magnitude.

    A wide output (a language model's logits) is screened on evenly strided units first: samples that differ
    there by a thousand times the tolerance are not constant (the rest of the output would need values a thousand
    times larger than the whole sample's to hide that), and only an output that passes is read whole.

    >>> is_constant_across_samples(torch.tensor([[1.0, 2.0], [1.0, 2.0]]))
    True
    >>> is_constant_across_samples(torch.tensor([[1.0, 2.0], [1.0, 2.1]]))
    False
    """
    if values.dim() == 0 or values.shape[0] < 2:
        return False
    v = values.detach().reshape(values.shape[0], -1)
    if not v.is_floating_point():
        return bool((v == v[:1]).all())
    if v.shape[1] > 4 * _SCREEN_VALUES:
        sample = v[:, :: v.shape[1] // _SCREEN_VALUES]
        if _spread_over_tolerance(sample, rtol, atol) > _CLEARLY_DIFFERENT:
            return False
    return _spread_over_tolerance(v, rtol, atol) <= 1.0


def _spread_over_tolerance(v: torch.Tensor, rtol: Optional[float], atol: float) -> float:
    """The largest difference from the first sample, in units of the tolerance (NaN: not constant)."""
    low, high = torch.aminmax(v)  # the largest magnitude in one pass
    tol = atol + _tolerance(v.dtype, rtol, 2) * float(torch.maximum(low.abs(), high.abs()))
    diff = float((v - v[:1]).abs_().amax())
    return diff / tol if tol > 0 else (0.0 if diff == 0 else math.inf)


def outputs_agree(a: torch.Tensor, b: torch.Tensor, rtol: Optional[float] = None, atol: float = 1e-6) -> bool:
    """Whether two evaluations of the same batch agree, up to a tolerance relative to the output's magnitude."""
    if a.shape != b.shape:
        return False
    a, b = a.detach(), b.detach()
    if torch.equal(a, b):  # the usual case, in one pass (NaNs never compare equal: they take the long way)
        return True
    if not a.is_floating_point():
        return False
    finite = torch.isfinite(a) & torch.isfinite(b)
    if not bool(torch.equal(torch.isfinite(a), torch.isfinite(b))):
        return False
    diff = (a.float() - b.float()).abs()[finite]
    if diff.numel() == 0:
        return True
    scale = float(a.float().abs()[finite].amax())
    return float(diff.amax()) <= atol + _tolerance(a.dtype, rtol, 8) * scale

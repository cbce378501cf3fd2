"""Loss calls and what they are fed: the pure functions behind ``loss-input`` (and the call ``initial-loss`` reads).

Recognising a loss call and binding its arguments (:class:`LossCall`), and the tell-tale signs of a loss fed the
wrong thing (probabilities where logits are expected, silently broadcast shapes, class indices out of range). What
the loss should be at init lives in :mod:`lightning_sanity.checks.loss_expectations`, the ``initial-loss`` verdict in
:mod:`lightning_sanity.checks.initial_loss`.

Example::

    >>> broadcast_problem((64, 1), (64,))
    'prediction (64, 1) and target (64,) broadcast to (64, 64)'
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F

#: The loss functions recognised, by the functional each ``nn`` loss module calls, and the kind each one is.
LOSS_FUNCTIONS: dict[Callable, str] = {
    F.cross_entropy: "cross_entropy",
    F.nll_loss: "nll",
    F.binary_cross_entropy: "binary_cross_entropy",
    F.binary_cross_entropy_with_logits: "binary_cross_entropy_with_logits",
    F.mse_loss: "mse",
    F.l1_loss: "l1",
    F.smooth_l1_loss: "smooth_l1",
    F.huber_loss: "huber",
    F.kl_div: "kl_div",
    F.gaussian_nll_loss: "gaussian_nll",
    F.poisson_nll_loss: "poisson_nll",
}
CLASSIFICATION = ("cross_entropy", "nll")
BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
REGRESSION = ("mse", "l1", "smooth_l1", "huber")
DISTRIBUTION = ("kl_div", "gaussian_nll", "poisson_nll")

#: How the kinds are named to the other checks (``facts["loss_kind"]``).
KIND_FAMILY = {
    "cross_entropy": "cross_entropy", "nll": "cross_entropy",
    "binary_cross_entropy": "binary_cross_entropy", "binary_cross_entropy_with_logits": "binary_cross_entropy",
    "mse": "mse", "l1": "l1", "smooth_l1": "huber", "huber": "huber",
    # "gaussian_likelihood", not "..._nll": the other checks read "nll" as a cross-entropy.
    "kl_div": "kl_div", "gaussian_nll": "gaussian_likelihood", "poisson_nll": "poisson_likelihood",
}

_SIGNATURES: dict[Callable, inspect.Signature] = {}


def loss_kind(func: Any) -> Optional[str]:
    """The kind of a recognised loss functional, or None."""
    try:
        return LOSS_FUNCTIONS.get(func)
    except TypeError:  # unhashable callables
        return None


@dataclasses.dataclass
class LossCall:
    """One loss call's arguments, normalised: prediction, target and the options that change the expectation."""

    kind: str
    input: torch.Tensor
    target: torch.Tensor
    weight: Optional[torch.Tensor] = None
    pos_weight: Optional[torch.Tensor] = None
    ignore_index: int = -100
    label_smoothing: float = 0.0
    reduction: str = "mean"
    delta: float = 1.0  # huber's delta, smooth_l1's beta
    var: Optional[torch.Tensor] = None  # gaussian_nll_loss's predicted variance
    full: bool = False  # gaussian_nll_loss's constant term, poisson_nll_loss's Stirling term
    eps: float = 1e-6  # gaussian_nll_loss's variance floor, poisson_nll_loss's log floor (log_input=False)
    log_input: bool = True  # poisson_nll_loss reads its input as a log-rate
    log_target: bool = False  # kl_div's target given as log-probabilities


def bind_loss_call(func: Callable, args: tuple, kwargs: Optional[dict]) -> Optional[LossCall]:
    """The :class:`LossCall` of ``func(*args, **kwargs)``, or None when ``func`` is not recognised."""
    kind = loss_kind(func)
    if kind is None:
        return None
    sig = _SIGNATURES.get(func)
    if sig is None:
        sig = _SIGNATURES[func] = inspect.signature(func)
    bound = sig.bind(*args, **(kwargs or {}))
    bound.apply_defaults()
    a = bound.arguments
    if not isinstance(a.get("input"), torch.Tensor) or not isinstance(a.get("target"), torch.Tensor):
        return None
    reduction = a.get("reduction", "mean")
    if a.get("size_average") is not None or a.get("reduce") is not None:
        from torch.nn import _reduction

        reduction = _reduction.legacy_get_string(a.get("size_average"), a.get("reduce"))
    weight = a.get("weight")
    pos_weight = a.get("pos_weight")
    return LossCall(
        kind=kind,
        input=a["input"],
        target=a["target"],
        weight=weight if isinstance(weight, torch.Tensor) else None,
        pos_weight=pos_weight if isinstance(pos_weight, torch.Tensor) else None,
        ignore_index=int(a.get("ignore_index", -100)),
        label_smoothing=float(a.get("label_smoothing", 0.0) or 0.0),
        reduction=str(reduction),
        delta=float(a.get("delta", a.get("beta", 1.0))),
        var=a.get("var") if isinstance(a.get("var"), torch.Tensor) else None,
        full=bool(a.get("full", False)),
        eps=float(a.get("eps", 1e-6)),
        log_target=bool(a.get("log_target", False)),
        log_input=bool(a.get("log_input", True)),
    )


# --------------------------------------------------------------------------- shapes and rows


def class_rows(values: torch.Tensor) -> torch.Tensor:
    """Cross-entropy predictions as ``(rows, C)`` in float: the class dimension is 1, or 0 when unbatched."""
    values = values.detach().float()
    if values.dim() == 1:
        return values.unsqueeze(0)
    return values.movedim(1, -1).reshape(-1, values.shape[1])


def num_classes(call: LossCall) -> Optional[int]:
    """The number of classes of a cross-entropy / NLL call (its prediction's class dimension)."""
    if call.kind not in CLASSIFICATION:
        return None
    return int(call.input.shape[1] if call.input.dim() > 1 else call.input.shape[0])


def hard_targets(call: LossCall) -> bool:
    """Class-index targets (integer), as opposed to class probabilities of the prediction's shape."""
    return not torch.is_floating_point(call.target)


def broadcast_problem(input_shape: tuple, target_shape: tuple) -> Optional[str]:
    """A description when an element-wise loss's prediction and target shapes differ (they broadcast silently)."""
    input_shape, target_shape = tuple(input_shape), tuple(target_shape)
    if input_shape == target_shape:
        return None
    try:
        result = tuple(torch.broadcast_shapes(input_shape, target_shape))
    except RuntimeError:
        return f"prediction {input_shape} and target {target_shape} do not broadcast"
    return f"prediction {input_shape} and target {target_shape} broadcast to {result}"


def broadcast_grows(input_shape: tuple, target_shape: tuple) -> bool:
    """True when broadcasting makes more elements than either side: every prediction is compared with every
    target ((B, 1) against (B,) gives (B, B)), which is never what a per-sample loss means."""
    try:
        n = math.prod(torch.broadcast_shapes(tuple(input_shape), tuple(target_shape)))
    except RuntimeError:
        return False
    return n > max(math.prod(input_shape), math.prod(target_shape))


# --------------------------------------------------------------------------- what was fed to the loss


def looks_like_probabilities(rows: torch.Tensor, tol: float = 1e-3) -> bool:
    """Every row lies in [0, 1] and sums to 1: the output of a softmax, not logits.

    Logits of a freshly initialised layer are of both signs and their rows sum to anything; a row of C >= 2
    logits that happens to sum to exactly 1 with every entry in [0, 1] is practically impossible.
    """
    if rows.numel() == 0 or rows.shape[-1] < 2:
        return False
    in_range = bool(((rows >= -tol) & (rows <= 1 + tol)).all())
    return in_range and bool(((rows.sum(-1) - 1).abs() <= tol * rows.shape[-1]).all())


def looks_like_log_probabilities(rows: torch.Tensor, tol: float = 1e-3) -> bool:
    """Every row's ``logsumexp`` is 0: the output of ``log_softmax``, what ``nll_loss`` expects."""
    if rows.numel() == 0:
        return False
    return bool((torch.logsumexp(rows, -1).abs() <= tol * max(1.0, math.log(rows.shape[-1]))).all())


def same_target(target: Any, batch_target: Any) -> bool:
    """Whether a loss call's target is the batch's target: the same tensor, or the same values in another shape or
    dtype (``y.float().unsqueeze(1)``, ``y.view(-1)``). A target the step made itself (a GAN's
    ``torch.ones_like(d_out)``, a one-hot encoding, the shifted tokens of a language model) is not. Equal values
    count only when they are not all the same: a constant target (``zeros_like``) says nothing of where it came
    from, even when the batch's labels happen to be that constant too.

    >>> y = torch.tensor([0, 3, 1])
    >>> same_target(y.float().unsqueeze(1), y), same_target(torch.ones(3), y), same_target(y, None)
    (True, False, False)
    >>> zeros = torch.zeros(3)
    >>> same_target(zeros, zeros), same_target(torch.zeros(3, 1), zeros)
    (True, False)
    """
    if not isinstance(target, torch.Tensor) or not isinstance(batch_target, torch.Tensor):
        return False
    if target is batch_target:
        return True
    if target.numel() != batch_target.numel() or target.numel() == 0:
        return False
    try:
        a = target.detach().reshape(-1).float()
        b = batch_target.detach().reshape(-1).to(a.device).float()
        if bool((b == b[0]).all()):
            return False
        # bfloat16 keeps about 3 significant digits: a cast target still counts as the batch's.
        return bool(torch.allclose(a, b, rtol=1e-2, atol=1e-6))
    except Exception:  # complex, sparse or otherwise incomparable tensors
        return False


def has_class_weights(call: LossCall) -> bool:
    """Whether a classification loss weighs its classes unequally (``weight=`` with differing values).

    >>> call = LossCall("cross_entropy", torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.tensor([1., 2., 1.]))
    >>> has_class_weights(call), has_class_weights(dataclasses.replace(call, weight=torch.ones(3)))
    (True, False)
    """
    w = call.weight
    if w is None or w.numel() < 2:
        return False
    w = w.detach().reshape(-1)
    return not bool((w == w[0]).all())


def class_index_problem(target: torch.Tensor, classes: int, ignore_index: int = -100) -> Optional[dict[str, Any]]:
    """Figures about class indices outside ``[0, classes)`` (``ignore_index`` excepted), or None when all fit."""
    t = target.detach().reshape(-1)
    t = t[t != ignore_index]
    if t.numel() == 0:
        return None
    bad = (t < 0) | (t >= classes)
    n_bad = int(bad.sum())
    if n_bad == 0:
        return None
    return {"out_of_range": n_bad, "min_label": int(t.min()), "max_label": int(t.max()), "num_classes": classes}

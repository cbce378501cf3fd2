"""The math of the ``initial-loss`` and ``loss-input`` checks: pure functions on tensors.

Recognising a loss call, what a loss should be before any update (a uniform or zero prediction, and the best
input-independent constant), the bias that gives that best constant, and the tell-tale signs of a loss fed the
wrong thing (probabilities where logits are expected, silently broadcast shapes, class indices out of range).

Example::

    >>> import torch
    >>> target = torch.tensor([0, 0, 0, 1])
    >>> e = expected_losses(LossCall("cross_entropy", torch.zeros(4, 2), target))
    >>> round(e.uniform, 4), round(e.baseline, 4), [round(b, 2) for b in e.best_bias]
    (0.6931, 0.5623, [-0.29, -1.39])
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
}
CLASSIFICATION = ("cross_entropy", "nll")
BINARY = ("binary_cross_entropy", "binary_cross_entropy_with_logits")
REGRESSION = ("mse", "l1", "smooth_l1", "huber")
DISTRIBUTION = ("kl_div", "gaussian_nll")

#: How the kinds are named to the other checks (``facts["loss_kind"]``).
KIND_FAMILY = {
    "cross_entropy": "cross_entropy", "nll": "cross_entropy",
    "binary_cross_entropy": "binary_cross_entropy", "binary_cross_entropy_with_logits": "binary_cross_entropy",
    "mse": "mse", "l1": "l1", "smooth_l1": "huber", "huber": "huber",
    # "gaussian_likelihood", not "..._nll": the other checks read "nll" as a cross-entropy.
    "kl_div": "kl_div", "gaussian_nll": "gaussian_likelihood",
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
    full: bool = False  # gaussian_nll_loss's constant term
    eps: float = 1e-6  # gaussian_nll_loss's variance floor
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


# --------------------------------------------------------------------------- expected losses at init


@dataclasses.dataclass
class LossExpectation:
    """What a loss should be before training, on one batch.

    ``uniform``: the loss of a uniform (classification) or zero (regression) prediction, per element.
    ``baseline``: the best input-independent loss, reached by a constant prediction (label prior, target mean).
    ``best_bias``: the final-layer bias that makes the constant prediction the best one, one value per output.
    ``prior``: the class frequencies (classification, weighted as the loss weighs them), else None.
    ``count``: how many elements the expectation is over (ignored targets excluded).
    """

    uniform: float
    baseline: float
    best_bias: list[float]
    prior: Optional[list[float]] = None
    count: int = 0
    bias_meaning: str = ""
    #: the best loss with one constant shared by every output (equal to ``baseline`` for a single output).
    shared_baseline: Optional[float] = None
    outputs: int = 1
    #: how ``baseline`` is obtained, for the checks' details (see :mod:`lightning_sanity.checks.loss_priors`).
    formula: str = ""


def entropy(p: torch.Tensor) -> float:
    """Entropy in nats of a probability vector (zeros contribute nothing)."""
    p = p[p > 0]
    return max(0.0, float(-(p * p.log()).sum()))


def class_prior(call: LossCall) -> tuple[torch.Tensor, int]:
    """The class frequencies of a cross-entropy target, weighted by the loss's class weights, and the count.

    With class weights ``w``, the weighted mean loss of a constant prediction ``q`` is minimised by ``q`` proportional
    to ``w_c n_c``; with label smoothing ``e`` the smoothed targets average to ``(1 - e) p + e / C``.
    """
    classes = num_classes(call)
    if hard_targets(call):
        t = call.target.detach().reshape(-1)
        t = t[(t != call.ignore_index) & (t >= 0) & (t < classes)]
        counts = torch.bincount(t.long(), minlength=classes).double()[:classes]
        n = int(t.numel())
    else:
        rows = class_rows(call.target).double()
        counts, n = rows.sum(0), rows.shape[0]
    if call.weight is not None and call.weight.numel() == classes:
        counts = counts * call.weight.detach().double().reshape(-1).to(counts.device)
    total = counts.sum()
    prior = counts / total if float(total) > 0 else torch.full((classes,), 1.0 / classes, dtype=torch.double)
    if call.label_smoothing:
        prior = (1 - call.label_smoothing) * prior + call.label_smoothing / classes
    return prior.cpu(), n


def _columns(values: torch.Tensor) -> torch.Tensor:
    """An element-wise loss's values as ``(rows, outputs)``: one column per output channel (dimension 1)."""
    values = values.detach().double()
    if values.dim() <= 1:
        return values.reshape(-1, 1)
    return values.movedim(1, -1).reshape(-1, values.shape[1])


def _huber(x: torch.Tensor, delta: float, smooth_l1: bool) -> torch.Tensor:
    a = x.abs()
    quad = 0.5 * x * x
    value = torch.where(a < delta, quad, delta * (a - 0.5 * delta))
    return value / delta if smooth_l1 else value


def _best_huber_constant(y: torch.Tensor, delta: float, smooth_l1: bool) -> torch.Tensor:
    """Per column, the constant minimising the mean Huber loss (convex in the constant: ternary search)."""
    lo, hi = y.min(0).values.clone(), y.max(0).values.clone()
    for _ in range(80):
        a, b = lo + (hi - lo) / 3, hi - (hi - lo) / 3
        fa = _huber(y - a, delta, smooth_l1).mean(0)
        fb = _huber(y - b, delta, smooth_l1).mean(0)
        left = fa <= fb
        hi = torch.where(left, b, hi)
        lo = torch.where(left, lo, a)
    return (lo + hi) / 2


def expected_losses(call: LossCall) -> Optional[LossExpectation]:
    """The uniform/zero-prediction loss and the best constant loss of ``call`` on its own batch, or None.

    None when the expectation is not defined (the baseline is unknown): shapes that do not match, an empty target,
    soft targets with negative entries, binary targets outside [0, 1]. ``formula`` says how the baseline is obtained.
    """
    from lightning_sanity.checks.loss_priors import REGRESSION_FORMULAS

    if call.kind in BINARY and call.target.numel() and bool(((call.target < 0) | (call.target > 1)).any()):
        return None  # -t ln q - (1 - t) ln(1 - q) is unbounded below for t outside [0, 1]
    e = _expected_losses(call)
    if e is not None and not e.formula:
        e.formula = REGRESSION_FORMULAS.get(call.kind, "")
    return e


def _expected_losses(call: LossCall) -> Optional[LossExpectation]:
    kind = call.kind
    if kind in CLASSIFICATION:
        classes = num_classes(call)
        if not hard_targets(call) and tuple(call.target.shape) != tuple(call.input.shape):
            return None
        from lightning_sanity.checks.loss_priors import classification_expectation

        return classification_expectation(call, classes)
    if kind in DISTRIBUTION:
        from lightning_sanity.checks.loss_priors import distribution_expectation

        return distribution_expectation(call)
    if tuple(call.input.shape) != tuple(call.target.shape) or call.target.numel() == 0:
        return None
    y = _columns(call.target)
    if kind in BINARY:
        w = torch.ones_like(y) if call.weight is None else _columns(torch.broadcast_to(call.weight, call.target.shape))
        pw = torch.ones(y.shape[1], dtype=y.dtype)
        if call.pos_weight is not None and kind == "binary_cross_entropy_with_logits":
            pw = torch.broadcast_to(call.pos_weight.detach().double().cpu().reshape(-1), (y.shape[1],))
        pw = pw.to(y.device)

        def bce(q: torch.Tensor) -> torch.Tensor:
            q = q.clamp(1e-12, 1 - 1e-12)
            return -(w * (pw * y * q.log() + (1 - y) * (1 - q).log()))

        pos, neg = (w * pw * y).sum(0), (w * (1 - y)).sum(0)
        q = pos / (pos + neg).clamp_min(1e-12)
        uniform = float(bce(torch.full_like(q, 0.5)).mean())
        baseline = float(bce(q).mean())
        bias = torch.log(q.clamp(1e-6, 1 - 1e-6) / (1 - q.clamp(1e-6, 1 - 1e-6)))
        return LossExpectation(uniform, baseline, _round(bias), _round(q, 4), y.shape[0] * y.shape[1],
                               "log(p / (1 - p)) of the positive rate")
    flat = y.reshape(-1, 1)
    if kind == "mse":
        mean = y.mean(0)
        return LossExpectation(float((y * y).mean()), float(((y - mean) ** 2).mean()), _round(mean), None,
                               y.numel(), "the target mean", float(flat.var(unbiased=False)), y.shape[1])
    if kind == "l1":
        median = y.median(0).values
        return LossExpectation(float(y.abs().mean()), float((y - median).abs().mean()), _round(median), None,
                               y.numel(), "the target median", float((flat - flat.median()).abs().mean()), y.shape[1])
    if kind in ("huber", "smooth_l1"):
        smooth = kind == "smooth_l1"
        if call.delta <= 0:
            return None
        best = _best_huber_constant(y, call.delta, smooth)
        shared = _best_huber_constant(flat, call.delta, smooth)
        return LossExpectation(float(_huber(y, call.delta, smooth).mean()), float(_huber(y - best, call.delta, smooth).mean()),
                               _round(best), None, y.numel(), "the constant that minimises the Huber loss",
                               float(_huber(flat - shared, call.delta, smooth).mean()), y.shape[1])
    return None


def _round(values: torch.Tensor, digits: int = 3) -> list[float]:
    return [round(float(v), digits) for v in values.reshape(-1).tolist()]


def observed_loss(call: LossCall, output: torch.Tensor) -> Optional[float]:
    """The loss per element, whatever the reduction: comparable with :func:`expected_losses`' figures."""
    value = output.detach().double()
    if call.reduction == "none":
        if call.kind in CLASSIFICATION and hard_targets(call):
            keep = call.target.detach().reshape(value.shape) != call.ignore_index
            if call.weight is not None and call.weight.numel() == num_classes(call):
                t = call.target.detach().clamp(0, num_classes(call) - 1).long()
                wsum = call.weight.detach().double().to(value.device)[t][keep].sum()
                return float(value[keep].sum() / wsum) if float(wsum) > 0 else None
            return float(value[keep].mean()) if bool(keep.any()) else None
        return float(value.mean()) if value.numel() else None
    total = float(value.reshape(-1)[0]) if value.numel() else None
    if total is None or call.reduction != "sum":
        return total
    expectation_count = _sum_normaliser(call)
    return total / expectation_count if expectation_count else None


def _sum_normaliser(call: LossCall) -> float:
    """What a ``reduction="sum"`` loss is divided by to become the per-element mean the expectations use."""
    if call.kind in CLASSIFICATION:
        if not hard_targets(call):
            return float(class_rows(call.target).shape[0])
        t = call.target.detach().reshape(-1)
        keep = t != call.ignore_index
        if call.weight is not None and call.weight.numel() == num_classes(call):
            t = t[keep].clamp(0, num_classes(call) - 1).long()
            return float(call.weight.detach().double().to(t.device)[t].sum())
        return float(keep.sum())
    return float(call.target.numel())


def mean_prediction(call: LossCall) -> Optional[torch.Tensor]:
    """The prediction averaged over the batch, as probabilities (per class, or per output for binary)."""
    x = call.input.detach()
    if call.kind in ("cross_entropy", "nll"):
        # Probabilities in float32, their mean accumulated in float64: a 32k-vocabulary LM's logits are not
        # copied to float64 whole (twice as much memory as the output itself).
        rows = class_rows(x).float()
        probs = rows.softmax(-1) if call.kind == "cross_entropy" else rows.exp()
        return (probs.sum(0, dtype=torch.float64) / rows.shape[0]).cpu()
    x = x.double()
    if call.kind == "binary_cross_entropy_with_logits":
        return _columns(x).sigmoid().mean(0).cpu()
    if call.kind == "binary_cross_entropy":
        return _columns(x).mean(0).cpu()
    return None


def init_matches_prior(prior: list[float], prediction: torch.Tensor, binary: bool) -> bool:
    """Whether the model's average prediction at init is already near the label prior.

    True when the prediction is at least twice as close (in KL divergence) to the prior as a uniform prediction
    is, or when the prior is close to uniform anyway. Used to tell a prior-initialised bias, or a loss whose
    class weights balance the classes, from a default initialisation on imbalanced labels.
    """
    p = torch.tensor(prior, dtype=torch.double)
    q = prediction.double().reshape(-1).clamp(1e-9, 1)
    if binary:
        p = torch.stack([p, 1 - p], -1)
        q = torch.stack([q, (1 - q).clamp_min(1e-9)], -1)
        uniform = torch.full_like(p, 0.5)
    else:
        p, q = p.unsqueeze(0), q.unsqueeze(0)
        uniform = torch.full_like(p, 1.0 / p.shape[-1])

    def kl(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.where(a > 0, a * (a.clamp_min(1e-12).log() - b.log()), torch.zeros_like(a)).sum(-1).mean())

    to_uniform = kl(p, uniform)
    return to_uniform < 0.02 or kl(p, q) < 0.5 * to_uniform


# --------------------------------------------------------------------------- judgements


#: Cross-entropy of a default-initialised last layer sits a few tenths of a nat above ln C (logits with a std of a
#: few tenths cost about std^2 / 2 more). Fire only when the loss is at least twice the uniform loss and at least 2
#: nats above it: an overconfident head (logits with a std of several units) sits there, a healthy init never does.
CLASSIFICATION_FACTOR = 2.0
CLASSIFICATION_MARGIN = 2.0
#: MSE at init against the best constant: with targets of mean m and spread s and an output near 0, MSE starts at
#: about s^2 + m^2. A factor 3 fires when |m| > 1.4 s, i.e. when the output bias has further to travel than the
#: whole spread of the targets ("init well": set the final bias to the mean).
MSE_FACTOR = 3.0
#: L1 and Huber grow linearly with the offset: a factor 2 corresponds to about the same offset as MSE's factor 3.
LINEAR_FACTOR = 2.0
#: With ``expected_loss`` given (a custom loss), the first loss may be up to this factor above or below it: the
#: user's expectation is a rough figure, and a 2x miss is what a badly scaled last layer or bias produces.
EXPECTED_FACTOR = 2.0
#: Up to this many outputs, each output's own best constant is the reference (a bias per target); past it
#: (reconstructed images, sequences) one constant shared by all outputs is: a "mean image" is no initialisation
#: anyone expects.
PER_OUTPUT_REFERENCE_MAX = 16


def initial_loss_verdict(
    kind: str,
    observed: float,
    expectation: LossExpectation,
    *,
    classification_factor: float = CLASSIFICATION_FACTOR,
    classification_margin: float = CLASSIFICATION_MARGIN,
    mse_factor: float = MSE_FACTOR,
    linear_factor: float = LINEAR_FACTOR,
) -> Optional[str]:
    """``"overconfident"`` or ``"offset"`` when the loss at init is far above what the task predicts, else None.

    Classification (and binary) losses fire above both ``classification_factor`` times and ``classification_margin``
    nats over the uniform prediction's loss; MSE above ``mse_factor`` times, L1 / Huber above ``linear_factor``
    times the best constant prediction's loss (defaults: the module's constants).

    >>> e = LossExpectation(uniform=math.log(10), baseline=2.2, best_bias=[])
    >>> initial_loss_verdict("cross_entropy", 4.5, e) is None
    True
    >>> initial_loss_verdict("cross_entropy", 4.5, e, classification_factor=1.5)
    'overconfident'
    """
    if not math.isfinite(observed):
        return None  # the non-finite check owns NaN / Inf losses
    if kind == "gaussian_nll":
        # A log-likelihood, of either sign: a ratio means nothing. A mean off by k target standard deviations costs
        # about k^2 / 2 nats over the best constant; 2 nats is an offset of 2 sd, as the classification margin.
        return "offset" if observed > expectation.baseline + classification_margin else None
    if kind in CLASSIFICATION or kind in BINARY or kind == "kl_div":
        uniform = expectation.uniform
        if observed > max(classification_factor * uniform, uniform + classification_margin):
            return "overconfident"
        return None
    factor = mse_factor if kind == "mse" else linear_factor
    baseline = expectation.baseline
    if expectation.outputs > PER_OUTPUT_REFERENCE_MAX and expectation.shared_baseline is not None:
        baseline = expectation.shared_baseline
    scale = max(abs(expectation.uniform), 1e-12)
    if baseline <= 1e-9 * scale:
        return None  # constant targets: no spread to compare with (label-distribution reports those)
    if observed > factor * baseline:
        return "offset"
    return None


def outside_expected(observed: float, expected: float, factor: float = EXPECTED_FACTOR) -> bool:
    """Whether the loss at init is more than ``factor`` times above or below the user's ``expected_loss``.

    >>> outside_expected(5.0, 2.3), outside_expected(3.0, 2.3), outside_expected(1.0, 2.3)
    (True, False, True)
    """
    ratio = observed / expected
    return ratio > factor or ratio < 1.0 / factor


def regression_cause(call: LossCall) -> dict[str, float]:
    """Splits a regression loss at init into the part a bias fixes (offset of the mean prediction from the best
    constant) and the part that comes from the spread of the predictions."""
    y, x = _columns(call.target), _columns(call.input)
    if call.kind == "mse":
        offset = float(((x.mean(0) - y.mean(0)) ** 2).mean())
        spread = float(x.var(0, unbiased=False).mean())
    else:
        offset = float((x.mean(0) - y.median(0).values).abs().mean())
        spread = float((x - x.mean(0)).abs().mean())
    return {"offset": offset, "spread": spread, "output_mean": float(x.mean()), "output_std": float(x.std())
            if x.numel() > 1 else 0.0}


def format_values(values: list[float], limit: int = 10) -> str:
    """``[0.1, 0.2]``, shortened with an ellipsis past ``limit`` values."""
    shown = ", ".join(f"{v:.3g}" for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"

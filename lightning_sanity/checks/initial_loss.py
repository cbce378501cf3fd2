"""The ``initial-loss`` verdict: is the loss before any update far from what the task predicts?

Pure functions on the figures of :mod:`lightning_sanity.checks.loss_expectations`, with the thresholds and where
they come from; the glue that watches the first step is :mod:`lightning_sanity.callbacks.initial_loss`.

Example::

    >>> outside_expected(5.0, 2.3)
    True
"""

from __future__ import annotations

import math
from typing import Optional

from lightning_sanity.checks.loss_expectations import LossExpectation, _columns
from lightning_sanity.checks.losses import BINARY, CLASSIFICATION, LossCall


#: Cross-entropy of a default-initialised last layer sits a few tenths of a nat above ln C (logits with a std of a
#: few tenths cost about std^2 / 2 more). Fire only when the loss is at least twice the uniform loss and at least 3
#: nats above it: an overconfident head (logits with a std of several units: a head drawn at std 1, raw pixels)
#: sits tens of nats above. A published init can reach 2.6 by its structure: T5's tied N(0, 1) embeddings with
#: logits rescaled by d^-0.5 score each position's own input token at about sqrt(d) (2.4-2.6 nats over 8 runs).
CLASSIFICATION_FACTOR = 2.0
CLASSIFICATION_MARGIN = 3.0
#: A mean off by k target standard deviations costs about k^2 / 2 nats of Gaussian NLL: 2 nats is an offset of 2 sd.
GAUSSIAN_MARGIN = 2.0
#: (For a weighted BCE, whose mean is over elements, the margin is 3 nats per unit of the batch's mean weight.)
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
#: How far (in the targets' own units) the targets' centre may sit from where an untrained network's output starts
#: before an offset start is worth a finding. Default initialisations keep activations, and so a regression
#: output, at unit scale around 0, and the recommended form of regression targets, standardised ones, lies within
#: +-3 of 0 (99.7 % of a normal): a network fitting standardised targets already has to move outputs that far. A
#: centre within that reach (log counts centred on 1.6, California prices in 100 000s) is ordinary learning of the
#: bias, done in the first steps; one beyond it (raw diabetes targets centred on 152) is an offset that no
#: unit-scale network closes quickly, and "standardise the targets or set the bias" applies.
OFFSET_REACH = 3.0
#: The spread of an untrained regression output that PyTorch's default initialisation gives: ``nn.Linear`` and the
#: convolutions draw weights of variance 1 / (3 fan_in) (kaiming_uniform with a = sqrt(5)), so on inputs of unit
#: second moment the output's std is 1/sqrt(3) = 0.58, and 0.41 after a ReLU (second moment 1/2). Outputs spread
#: within unit scale are what every default init gives: a loss far above the best constant then comes from targets
#: of a small spread (their scale, not the init), and "shrink the initial weights" would not apply. Weights scaled
#: up (x10, a custom init of std 1 on a wide layer) spread the outputs well beyond it.
DEFAULT_INIT_SPREAD = 1.0


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
    >>> initial_loss_verdict("cross_entropy", 4.5, e, classification_factor=1.5, classification_margin=2.0)
    'overconfident'
    >>> w = LossExpectation(uniform=2.61 * math.log(2), baseline=1.5, best_bias=[])  # mean weight 2.61 (pos_weight)
    >>> initial_loss_verdict("binary_cross_entropy_with_logits", 5.24, w) is None
    True
    """
    if not math.isfinite(observed):
        return None  # the non-finite check owns NaN / Inf losses
    if kind == "poisson_nll":
        # An untrained head predicts rates near 1 whatever the counts: its gap to the best constant grows with the
        # counts' mean (m ln m), so a start far above it is ordinary, not a bug. The baseline is for the detail.
        return None
    if kind == "gaussian_nll":
        # A log-likelihood, of either sign: a ratio means nothing.
        return "offset" if observed > expectation.baseline + GAUSSIAN_MARGIN else None
    if kind in CLASSIFICATION or kind in BINARY or kind == "kl_div":
        uniform = expectation.uniform
        margin = classification_margin
        if kind in BINARY and uniform > 0:
            # BCE's `weight` / `pos_weight` scale each element's loss and its mean is over elements, not weights:
            # the loss is in units of the batch's mean weight (uniform / ln 2). The margin is 3 nats per unit of
            # weight, so the verdict does not change when every weight is scaled, nor hang on how many upweighted
            # rare positives the first batch happened to draw (pos_weight 14, prior-odds bias: one positive more in a
            # batch of 16 adds about 2.3 to its loss). A mean weight under 1 (a mask of zeros) keeps the plain margin:
            # never stricter than for the unweighted loss.
            margin *= max(1.0, uniform / math.log(2))
        if observed > max(classification_factor * uniform, uniform + margin):
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
    if call.kind in ("mse", "gaussian_nll"):  # both best fitted by the targets' mean
        offset = float(((x.mean(0) - y.mean(0)) ** 2).mean())
        spread = float(x.var(0, unbiased=False).mean())
    else:
        offset = float((x.mean(0) - y.median(0).values).abs().mean())
        spread = float((x - x.mean(0)).abs().mean())
    centre = y.mean(0) if call.kind in ("mse", "gaussian_nll") else y.median(0).values
    return {"offset": offset, "spread": spread, "output_mean": float(x.mean()), "output_std": float(x.std())
            if x.numel() > 1 else 0.0, "centre_gap": float((x.mean(0) - centre).abs().mean())}


def offset_within_reach(cause: dict[str, float], reach: float = OFFSET_REACH) -> bool:
    """Whether a regression loss at init is high only because the output starts at unit scale near 0 while the
    targets centre within ``reach`` of it (see :data:`OFFSET_REACH`): normal for an untrained network, no finding.

    ``cause`` is :func:`regression_cause`'s split. An excess that comes from the spread of the initial outputs
    (weights scaled up) is never within reach: the bias cannot fix it.

    >>> offset_within_reach({"offset": 2.4, "spread": 0.1, "centre_gap": 1.55})
    True
    >>> offset_within_reach({"offset": 150.0, "spread": 0.3, "centre_gap": 150.0})
    False
    >>> offset_within_reach({"offset": 0.1, "spread": 9.0, "centre_gap": 0.3})
    False
    """
    return cause["offset"] >= cause["spread"] and cause["centre_gap"] <= reach


def spread_from_default_init(cause: dict[str, float], reach: float = DEFAULT_INIT_SPREAD) -> bool:
    """Whether a regression loss at init is high because of the spread of the initial outputs, a spread no wider
    than a default initialisation gives (see :data:`DEFAULT_INIT_SPREAD`): no finding.

    >>> spread_from_default_init({"offset": 0.02, "spread": 0.27, "output_std": 0.34})
    True
    >>> spread_from_default_init({"offset": 0.1, "spread": 9.0, "output_std": 11.0})
    False
    """
    return cause["spread"] > cause["offset"] and cause["output_std"] <= reach


#: The variances an untrained head predicts: a raw output near 0 through the usual positive maps gives exp(0) = 1,
#: softplus(0) = 0.69 or softplus(0)^2 = 0.48; a decade either side covers raw outputs at unit scale.
DEFAULT_INIT_VARIANCE = (0.1, 10.0)


def gaussian_start_within_reach(call: LossCall, reach: float = OFFSET_REACH) -> bool:
    """Whether a Gaussian NLL at init is high only as any untrained head's is: the mean predictions' centre within
    ``reach`` of the targets' (:data:`OFFSET_REACH`, as for MSE) and a median predicted variance within
    :data:`DEFAULT_INIT_VARIANCE`. A log inter-event time centred on -2 under a softplus scale costs about 3 nats at
    init and is learned in the first steps; raw targets centred on 152, or a variance from an exploded head, are not.

    >>> import torch
    >>> y = torch.randn(64, 1) * 0.5 - 2.0
    >>> call = LossCall("gaussian_nll", torch.zeros(64, 1), y, var=torch.full((64, 1), 0.48))
    >>> far = LossCall("gaussian_nll", call.input, y + 154, var=call.var)
    >>> gaussian_start_within_reach(call), gaussian_start_within_reach(far)
    (True, False)
    """
    if call.var is None or _columns(call.input).shape != _columns(call.target).shape:
        return False
    var = float(call.var.detach().float().median())
    return regression_cause(call)["centre_gap"] <= reach and DEFAULT_INIT_VARIANCE[0] <= var <= DEFAULT_INIT_VARIANCE[1]


def format_values(values: list[float], limit: int = 10) -> str:
    """``[0.1, 0.2]``, shortened with an ellipsis past ``limit`` values."""
    shown = ", ".join(f"{v:.3g}" for v in values[:limit])
    return f"[{shown}{', ...' if len(values) > limit else ''}]"

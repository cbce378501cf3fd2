"""Dropout noise against learning, for ``loss-trend``: a run that ends barely below the best constant while dropout
alone costs more than that, measured before any update as the training-mode loss minus the evaluation-mode loss.

Example::

    >>> v = judge_dropout_noise(tail=2.16, baseline=2.28, start_train=2.85, start_eval=2.33, dropout_p=0.9)
    >>> v.kind, round(v.data["dropout_cost"], 2)
    ('dropout-noise', 0.52)
    >>> judge_dropout_noise(tail=0.3, baseline=2.28, start_train=2.35, start_eval=2.31, dropout_p=0.5) is None
    True
"""

from __future__ import annotations

import math
from typing import Optional

from lightning_sanity.checks.loss_trend import BASELINE_MARGIN
from lightning_sanity.checks.verdict import Verdict

#: a drop probability above this (more units dropped than kept) is what the verdict blames.
MIN_DROP = 0.5


def judge_dropout_noise(tail: float, baseline: Optional[float], start_train: Optional[float],
                        start_eval: Optional[float], dropout_p: float,
                        margin: float = BASELINE_MARGIN) -> Optional[Verdict]:
    """A warning when, at the end of the planned run, what the model gained below the best constant
    (``baseline - tail``) is less than what dropout costs the loss before any update (``start_train - start_eval``:
    the same untrained weights in training mode, masks on, and in evaluation mode), and that cost is itself more
    than ``margin`` x the baseline (the margin loss-trend needs to tell a loss from the baseline, well above one
    batch's sampling noise at initialisation).

    Before any update the prediction carries no information about the input, so the whole gap between the two modes
    is the noise the masks inject into the output. A run whose learning does not even pay for that noise is
    dominated by it: a drop probability where a keep probability was meant (``p=0.9``). Judged only when some
    module drops more units than it keeps (``p > 0.5``): a healthy ``p=0.1`` regression MLP at another seed cost 0.92
    at initialisation against a gain of 0.71 and trained fine.
    """
    if baseline is None or start_train is None or start_eval is None or not dropout_p > MIN_DROP:
        # At p <= 0.5 every unit keeps more signal than noise: a large gap at initialisation is then the untrained
        # output's sensitivity (a regression head's scale), which training removes, not a dropout bug.
        return None
    if not all(math.isfinite(v) for v in (tail, baseline, start_train, start_eval)) or baseline <= 0:
        return None
    cost, gain = start_train - start_eval, baseline - tail
    if cost <= margin * baseline or gain >= cost:
        return None
    return Verdict(
        "dropout-noise",
        f"At the end of the planned run the training loss ({tail:.4g}) is only {gain:.3g} below the best constant "
        f"prediction ({baseline:.4g}), while dropout alone costs {cost:.3g} before any update (training mode "
        f"{start_train:.4g}, evaluation mode {start_eval:.4g}): the noise the masks inject outweighs what the model "
        f"learned. The largest drop probability in the model is p = {dropout_p:g}, keeping {1 - dropout_p:.0%} of "
        "the units.",
        "Check the dropout probabilities: PyTorch's `p` is the probability to DROP a unit (`nn.Dropout(0.1)` keeps "
        "90 %), TensorFlow's `keep_prob`/`rate` conventions differ. Above 0.5 the noise exceeds the signal at every "
        "unit; use 0.1-0.5 on hidden layers, less on small networks.",
        {"dropout_cost": cost, "gain_below_baseline": gain, "start_train_mode": start_train,
         "start_eval_mode": start_eval, "baseline": baseline, "tail_median": tail, "dropout_p": dropout_p},
    )

"""Whether a logged validation metric is in the training loss's units, from the error measure its name states.

``val-divergence`` compares the validation metric with the input-independent baseline of the training loss. A
metric named ``val_rmse`` beside an MSE training loss is the *root* of that loss: an RMSE of 1.3 against an MSE
baseline of 1.43 reads as "below the baseline" when its square, 1.69, is 18 % above it. The sanity check's
"same scale" test (a factor 2) cannot see this near 1, where a number and its square are close. The name settles it:
a root mean squared error squared is the mean squared error; a mean absolute error has no conversion to a squared
loss, nor a squared error to a Huber or absolute one.

Example::

    >>> loss_units("val_rmse", "mse")[0](1.3) == 1.3 ** 2
    True
    >>> loss_units("val_loss", "mse")[1] is None, loss_units("val/mae", "mse")[0] is None
    (True, True)
"""

from __future__ import annotations

import re
from typing import Callable, Optional

#: Error measures a metric name can state, per name token (``val_rmse``, ``val/eps_mse``, ``valid-mae``), and the
#: training loss kinds (``loss_kind`` facts) each is the same figure as.
_MEASURES = (("rmse", ("rmse", "rmsd")), ("mse", ("mse", "msd")), ("mae", ("mae", "l1")))
_SAME_KIND = {"mse": "mse", "mae": "l1"}

Transform = Callable[[float], float]


def named_measure(key: str) -> Optional[str]:
    """``"rmse"``, ``"mse"`` or ``"mae"`` when a token of the metric's name (between ``_``, ``/``, ...) is one.

    >>> named_measure("val_rmse"), named_measure("val/eps_mse"), named_measure("val_loss"), named_measure("val_mse_x")
    ('rmse', 'mse', None, 'mse')
    """
    for token in re.split(r"[^a-z0-9]+", key.lower()):
        for measure, names in _MEASURES:
            if token in names:
                return measure
    return None


def _square(value: float) -> float:
    return value * value


def loss_units(key: str, loss_kind: Optional[str]) -> tuple[Optional[Transform], Optional[str]]:
    """``(transform, note)``: the function that puts the metric ``key`` in the units of a training loss of kind
    ``loss_kind`` (identity when nothing is known), or None when its name states another error measure than the
    loss (no baseline of the loss applies); ``note`` says which, or None when nothing changed.

    >>> loss_units("val_rmse", "huber")[1]
    '`val_rmse` is a root mean squared error, the training loss a huber loss: compared with itself only'
    """
    measure = named_measure(key)
    if measure is None or not isinstance(loss_kind, str):
        return (lambda v: v), None
    if measure == "rmse" and loss_kind == "mse":
        return _square, f"`{key}` squared, the root of the training loss's mean squared error"
    if _SAME_KIND.get(measure) == loss_kind:
        return (lambda v: v), None
    words = {"rmse": "a root mean squared error", "mse": "a mean squared error", "mae": "a mean absolute error"}
    return None, (f"`{key}` is {words[measure]}, the training loss a {loss_kind.replace('_', ' ')} loss: compared "
                  "with itself only")

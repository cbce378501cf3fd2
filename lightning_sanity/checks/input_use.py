"""What the model does first with a float input: the op that decides whether its raw scale reaches the layers.

A model that standardises its own inputs (RevIN's per-instance normalisation: ``(x - x.mean(1)) / x.std(1)``) first
*reads* statistics of the input, then subtracts and divides. The statistics do not carry the input's scale into
any layer; the first op that uses the input itself does. :func:`next_first_use` keeps the first op that is not
such a statistic, and the statistic only when nothing else ever uses the input (``x.mean(1)`` fed to a Linear:
average pooling of the raw scale).

Example::

    >>> first = None
    >>> for op in ("mean", "var", "__sub__", "linear"):
    ...     first = next_first_use(first, op)
    >>> first
    '__sub__'
    >>> next_first_use(None, "mean")
    'mean'
"""

from __future__ import annotations

from typing import Optional

#: Reductions that read the input's statistics without passing the input on.
STATISTIC_OPS = frozenset({
    "mean", "nanmean", "var", "std", "var_mean", "std_mean", "amax", "amin", "aminmax", "median", "nanmedian",
    "quantile", "nanquantile", "norm", "linalg_vector_norm", "vector_norm",
})


def next_first_use(earlier: Optional[str], op: str) -> Optional[str]:
    """The first use of an input after ``op`` ran on it, given the first use so far (``earlier``)."""
    if earlier is None or (earlier in STATISTIC_OPS and op not in STATISTIC_OPS):
        return op
    return earlier

"""An adaptive optimizer whose ``eps`` swamps the gradients' scale: part of ``update-ratio``, as pure functions.

Adam, AdamW, NAdam, RAdam, RMSprop and Adagrad step each element by ``lr * m / (sqrt(v) + eps)`` (PyTorch adds
``eps`` *after* the square root; TensorFlow's RMSprop adds it under it, so TF recipes' ``eps=1.0`` means ``1e-0.5``
of a gradient RMS there and a denominator of 1 here). With ``sqrt(v)`` the running RMS of an element's gradient,
the step is the adaptive one (about ``lr`` per element) scaled by the damping ``d = sqrt(v) / (sqrt(v) + eps)``.
When ``eps`` is far above the gradients' RMS, ``d`` is about ``sqrt(v) / eps`` and the optimizer is plain SGD at
``lr / eps``: hundreds of times smaller steps than the lr the user chose for an adaptive optimizer, and no
per-element scaling left. It fires when the median damping over the elements that received gradients is at most
``DAMPING`` (eps at least 9x the median gradient RMS): most weights take less than a tenth of the step their lr
asks for. Elements whose state is exactly 0 (no gradient ever reached them: unused embedding rows, frozen parts)
are left out: eps is what keeps their step finite, which is its job.

Example::

    >>> import torch
    >>> v = torch.full((100,), 1e-6)  # gradient RMS 1e-3
    >>> round(damping(v, eps=1.0).median().item(), 4)
    0.001
    >>> judge_eps([("w", 100, 0.001, 1.0, 1e-3)]).kind
    'eps-dominates'
    >>> judge_eps([("w", 100, 0.5, 1e-3, 1e-3)]) is None
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Optional

import torch

#: The median element's step is at most a tenth of the adaptive step its lr asks for: eps >= 9 x its gradient RMS.
#: A factor 10 is what tells "eps regularises the smallest gradients" (its purpose) from "eps sets every step".
DAMPING = 0.1
#: The early look comes at least this many steps in (or a tenth of the planned run): the running mean square has
#: averaged over a few batches by then.
EARLY_STEP = 20
#: Elements read per parameter (a strided sample): the median of 4096 draws is within a few percent of the whole.
SAMPLE = 1 << 12


@dataclasses.dataclass
class EpsVerdict:
    kind: str
    damping: float
    eps: float
    grad_rms: float
    layers: list[str]
    data: dict[str, Any]


def second_moment(optimizer: Any, state: dict) -> Optional[tuple[torch.Tensor, float]]:
    """``(running mean square of the gradient, bias correction)`` of one parameter's optimizer state, for the
    optimizers whose step divides by ``sqrt(v) + eps`` outside the root; ``None`` for the others (SGD, Adadelta,
    Adafactor, Adamax whose ``eps`` sits inside a max)."""
    name = type(optimizer).__name__.lower()
    if "adamax" in name or "adafactor" in name or "adadelta" in name:
        return None
    if "square_avg" in state and "rmsprop" in name:
        v = state["square_avg"]
        if "grad_avg" in state:  # centered: the variance, not the mean square
            v = v - state["grad_avg"] ** 2
        # torch's RMSprop starts its average at 0 and never corrects it; the gradients' scale is the corrected one
        alpha = float(getattr(optimizer, "defaults", {}).get("alpha", 0.99))
        return v, _correction(alpha, state.get("step", 0))
    if "exp_avg_sq" in state and "adam" in name:
        betas = getattr(optimizer, "defaults", {}).get("betas", (0.9, 0.999))
        return state["exp_avg_sq"], _correction(float(betas[1]), state.get("step", 0))
    if "sum" in state and "adagrad" in name:
        return state["sum"], 1.0
    return None


def _correction(decay: float, step: Any) -> float:
    """``1 - decay ** step``: the share of the gradients' mean square an average started at 0 holds."""
    step = float(step.reshape(-1)[0]) if isinstance(step, torch.Tensor) else float(step or 0)
    return 1.0 - decay ** step if step > 0 and 0 < decay < 1 else 1.0


def damping(v: torch.Tensor, eps: float, correction: float = 1.0) -> torch.Tensor:
    """``sqrt(v_hat) / (sqrt(v_hat) + eps)`` per element: the share of the adaptive step actually taken."""
    root = (v.float().clamp_min(0) / correction).sqrt()
    return root / (root + eps)


def sample(v: torch.Tensor) -> torch.Tensor:
    """At most ``SAMPLE`` strided elements of ``v`` whose value is not exactly 0, as float32."""
    flat = v.detach().reshape(-1)
    if flat.numel() > SAMPLE:
        flat = flat[:: flat.numel() // SAMPLE]
    flat = flat.float()
    return flat[flat > 0]


def judge_eps(rows: Sequence[tuple[str, int, float, float, float]],
              threshold: float = DAMPING) -> Optional[EpsVerdict]:
    """``rows``: ``(name, elements with state, median damping, eps, median gradient RMS)`` per parameter. Fires when
    the element-weighted median damping is at most ``threshold``."""
    rows = [r for r in rows if r[1] > 0]
    total = sum(r[1] for r in rows)
    if not total:
        return None
    ordered = sorted(rows, key=lambda r: r[2])
    seen, median = 0, ordered[-1]
    for r in ordered:
        seen += r[1]
        if seen * 2 >= total:
            median = r
            break
    if median[2] > threshold:
        return None
    damped = sorted((r for r in rows if r[2] <= threshold), key=lambda r: -r[1])
    share = sum(r[1] for r in damped) / total
    return EpsVerdict("eps-dominates", median[2], median[3], median[4], [r[0] for r in damped],
                      {"kind": "eps-dominates", "median_damping": median[2], "eps": median[3],
                       "median_grad_rms": median[4], "share": round(share, 4),
                       "layers": [r[0] for r in damped[:20]], "elements": total})

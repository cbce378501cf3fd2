"""``update-ratio`` kind ``eps-dominates``: glue for :mod:`lightning_sanity.checks.optimizer_eps`.

Called by :class:`~lightning_sanity.callbacks.norms.NormMonitor` at the end of fit, like the other update-ratio
verdicts. It reads the optimizers' state as it stands then (the running mean squares of the gradients, never
written): per trainable parameter, at most 4096 strided elements. No per-step work, no device copy of the model.

Example::

    >>> import torch
    >>> p = torch.nn.Parameter(torch.ones(8))
    >>> opt = torch.optim.RMSprop([p], eps=1.0)
    >>> eps_rows(opt, {id(p): "w"})
    []
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Optional

from lightning_sanity import cost
from lightning_sanity.checks import optimizer_eps as OE
from lightning_sanity.checks.naming import short_list
from lightning_sanity.findings import Severity

if TYPE_CHECKING:
    import lightning.pytorch as pl

log = logging.getLogger(__name__)
CHECK = "update-ratio"


def eps_rows(optimizer: Any, names: dict[int, str]) -> list[tuple[str, int, float, float, float]]:
    """``(name, elements with state, median damping, eps, median gradient RMS)`` per trainable parameter; the
    per-parameter medians are stacked and read in one transfer."""
    import torch

    meta, medians = [], []
    for group in optimizer.param_groups:
        eps = group.get("eps")
        if not isinstance(eps, (int, float)) or eps <= 0:
            continue
        for p in group["params"]:
            if not getattr(p, "requires_grad", False) or p not in optimizer.state:
                continue
            found = OE.second_moment(optimizer, optimizer.state[p])
            if found is None:
                continue
            v, correction = found
            v = OE.sample(v)
            if not v.numel():
                continue
            medians.append(torch.stack([OE.damping(v, float(eps), correction).median(),
                                        (v.median() / correction).sqrt()]))
            meta.append((names.get(id(p), "?"), int(v.numel()), float(eps)))
    if not medians:
        return []
    values = torch.stack([m.to(medians[0].device) for m in medians]).tolist()  # the one host read
    return [(name, n, d, eps, rms) for (name, n, eps), (d, rms) in zip(meta, values)]


def _rows(trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> tuple[list, list[str]]:
    import torch

    names = {id(p): n for n, p in pl_module.named_parameters()}
    rows, kinds = [], []
    with torch.no_grad():
        for optimizer in trainer.optimizers:
            found = eps_rows(optimizer, names)
            if found:
                rows += found
                kinds.append(type(optimizer).__name__)
    return rows, kinds


class EpsWatch:
    """One early look at the optimizers' state (a tenth into the planned run, at least step 20), kept for the end.

    The early look is what guards against a converged run: late in a run that fits its data, the gradients (and
    ``sqrt(v)``) shrink towards 0 and any eps ends up above them, which is eps doing its job; an eps that swamps
    the gradients while they are still at their training scale is the bug. Both looks must agree.
    """

    def __init__(self) -> None:
        self.at: Optional[int] = None
        self.early: Optional[OE.EpsVerdict] = None
        self.looked = False

    def start(self, trainer: "pl.Trainer") -> None:
        self.early, self.looked = None, False
        try:  # the property raises on some setups (an iterable of unknown length with max_steps=-1)
            planned = cost.planned_steps(trainer)
            planned = int(planned) if planned is not None and math.isfinite(planned) else 1000
        except Exception:
            planned = 1000
        self.at = max(OE.EARLY_STEP, planned // 10)

    def maybe_look(self, callback: Any, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        """Called before each optimizer step: one int comparison, and the look itself once."""
        if self.at is None or self.looked or trainer.global_step < self.at:
            return
        self.looked = True
        if not callback.is_enabled(CHECK) or not trainer.is_global_zero:
            return
        try:
            self.early = OE.judge_eps(_rows(trainer, pl_module)[0])
        except Exception:  # a check must never lose the user's run
            log.debug("early eps look failed", exc_info=True)


def conclude_eps(callback: Any, watch: EpsWatch, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
    """Report ``eps-dominates`` through ``callback`` when eps swamps the gradients' RMS for most elements, at the
    end and at the early look (when the run reached it)."""
    if not callback.is_enabled(CHECK) or not trainer.is_global_zero or trainer.global_step == 0:
        return
    if watch.looked and watch.early is None:
        return  # the gradients were above eps while still at their training scale
    try:
        rows, kinds = _rows(trainer, pl_module)
        verdict = OE.judge_eps(rows)
    except Exception as err:  # a check must never lose the user's run
        log.warning("lightning_sanity: the eps-dominates judgement of update-ratio failed: %r", err)
        return
    if verdict is None:
        return
    first = watch.early or verdict
    opt = "/".join(dict.fromkeys(kinds))
    when = f" at step {watch.at}" if watch.early else ""
    callback.report(
        trainer, CHECK, Severity.WARNING,
        f"{opt}'s eps ({first.eps:.3g}) is {first.eps / max(first.grad_rms, 1e-30):.3g}x the median gradient "
        f"RMS ({first.grad_rms:.2g}, the square root of its running mean square{when}): "
        f"eps, not the gradient scale, sets the step, so {first.data['share']:.0%} of the weights take at most a "
        f"tenth of the step their lr asks for (median {first.damping:.2g}x): this is SGD at lr / eps "
        f"({short_list(first.layers)}).",
        "PyTorch adds eps after the square root (TensorFlow's RMSprop adds it under it): a TF recipe's eps=1.0 is "
        "about eps=1e-3 here (timm's advice); otherwise keep eps well below the gradients' RMS (the default 1e-8).",
        where=first.layers[0], at_step=False, key="eps-dominates",
        data={**first.data, "early_step": watch.at if watch.early else None, "end_median_damping": verdict.damping},
    )

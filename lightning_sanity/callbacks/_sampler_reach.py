"""``val-divergence``'s ``sampler-reach`` finding: a training ``WeightedRandomSampler`` that can draw only the first
few rows of its dataset (glue; the rule is :func:`lightning_sanity.checks.sampler_reach.sampler_reach`)."""

from __future__ import annotations

import logging
from typing import Any, Optional, Sequence

from lightning_sanity.checks.sampler_reach import sampler_reach

log = logging.getLogger(__name__)


def report_sampler_reach(cb: Any, trainer: Any, key: Optional[str], val: Sequence[float]) -> None:
    """Report the training sampler's reach as a ``val-divergence`` error when it misses most of the dataset."""
    try:
        reach = sampler_reach(trainer.train_dataloader)
    except Exception as err:  # an unusual loader only means the sampler cannot be read
        log.debug("lightning_sanity: could not read the training sampler: %r", err)
        return
    if reach is None:
        return
    seen = (f"; `{key}` went {val[0]:.3g} -> {val[-1]:.3g} (best {min(val):.3g})" if key and val else "")
    cb.report(
        trainer, "val-divergence", "error",
        f"The training loader's WeightedRandomSampler has {reach['weights']} weight(s) for a dataset of "
        f"{reach['dataset_rows']} rows: it draws indices from range(len(weights)), so every training batch holds "
        f"only the first {reach['reachable_rows']} row(s), repeated ({reach['num_samples']} draws per epoch). The "
        f"model memorises them and validation measures nothing it was trained on{seen}.",
        "Give WeightedRandomSampler one weight per training sample, e.g. `weights = (1.0 / class_count)[labels]` "
        "(each sample weighted by its class's weight), and `num_samples=len(weights)`.",
        where="training sampler", at_step=False, key="sampler-reach", data={"pattern": "sampler-reach", **reach})

"""``train-mode`` at the end of the run: the modules seen in eval mode during training whose parameters no optimizer
holds. Backward reached them (``.grad`` set after a training batch, read by
:meth:`~lightning_sanity.callbacks.train_mode.TrainModeMonitor.on_train_batch_end`): they are part of the trained
model, so their eval mode is the usual
stray ``.eval()`` (warning). It never did: they are a copy kept outside training (an EMA, a teacher), updated by
hand and evaluated in eval mode on purpose (info). Called by
:meth:`lightning_sanity.callbacks.train_mode.TrainModeMonitor.conclude`.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import lightning.pytorch as pl

from lightning_sanity.checks.modes import module_kinds, summarize_names
from lightning_sanity.findings import Severity


def report_outside_training(callback: Any, trainer: "pl.Trainer", seen: dict[str, list[int]],
                            reached: Collection[str], modules: list[tuple[str, Any]]) -> None:
    """``seen``: module name -> [epoch, batch_idx, global_step of the first batch it was in eval mode, batches];
    ``reached``: those whose parameters held a gradient after a training batch."""
    names, hit = list(seen), set(reached)
    reached = [n for n in names if n in hit]
    rest = [n for n in names if n not in hit]
    by_name = dict(modules)
    total = len(modules)
    if reached:
        first = min((seen[n] for n in reached), key=lambda s: s[2])
        batches = max(seen[n][3] for n in reached)
        finding = callback.report(
            trainer, "train-mode", Severity.WARNING,
            f"{len(reached)} of {total} {module_kinds([by_name[n] for n in reached])} module(s) with trainable "
            f"parameters were in eval mode during training: {summarize_names(reached)}. No optimizer holds their "
            "parameters although backward gives them gradients.",
            "Find the `.eval()` call that runs during training (e.g. in `on_train_epoch_start`, a `train()` override "
            "or a helper) and remove it, or call `.train()` after it; pass their parameters to the optimizer.",
            where=reached[0], batch_idx=first[1], global_step=first[2], key="eval-during-training",
            data={"modules": reached[:50], "module_count": len(reached), "watched": total},
        )
        finding.count = max(finding.count, batches)
        callback.detail(trainer, "train-mode",
                        f"{len(reached)} trainable module(s) in eval mode on {batches} batch(es)")
    if rest:
        callback.report(
            trainer, "train-mode", Severity.INFO,
            f"{len(rest)} {module_kinds([by_name[n] for n in rest])} module(s) are in eval mode during training, in a "
            f"part that no optimizer holds and backward never reached (an EMA/SWA copy or a momentum teacher, updated "
            f"by hand): {summarize_names(rest)}; read as kept outside training.",
            "Nothing to do if this copy is updated by hand; `requires_grad_(False)` on it says so explicitly.",
            where=rest[0], at_step=False, key="eval-outside-training",
            data={"modules": rest[:50], "module_count": len(rest), "watched": total},
        )

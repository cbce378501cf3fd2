"""What ``lr-schedule`` follows of the configured schedulers besides the rates, for
:mod:`lightning_sanity.checks.scheduler_use`: the metric each ``ReduceLROnPlateau`` stepped with and the rate after
that step (read when its ``last_epoch`` moved, at each training epoch's start and at the end: once per scheduler
step, a value Lightning already handed to the scheduler), and each scheduler's ``last_epoch`` at the start of fit.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

import lightning.pytorch as pl

from lightning_sanity.checks import scheduler_use
from lightning_sanity.checks.loss_baseline import finite_or_none
from lightning_sanity.checks.schedule import LrTrajectory, optimizer_index
from lightning_sanity.checks.verdict import Verdict

_MAX_SAMPLES = 4096


def _peak(scheduler: Any, group: dict, j: int, base_lr: float) -> float:
    """The rate a schedule was to reach: its base rate, or the peak of a cyclic one (OneCycleLR, CyclicLR), which
    starts at its low rate."""
    peaks = getattr(scheduler, "max_lrs", None)
    peak = peaks[j] if isinstance(peaks, (list, tuple)) and j < len(peaks) else None
    return max(base_lr, finite_or_none(group.get("max_lr")) or 0.0, finite_or_none(peak) or 0.0)


@dataclasses.dataclass
class _Plateau:
    scheduler: Any
    optimizer: int
    monitor: str
    seen: Any
    samples: list = dataclasses.field(default_factory=list)


class SchedulerWatch:
    """The schedulers of one fit: plateau samples, ``last_epoch`` at the start, training epochs ended."""

    def __init__(self) -> None:
        self.plateaus: list[_Plateau] = []
        self.started: dict[int, Any] = {}
        self.epochs = 0

    def start(self, trainer: "pl.Trainer") -> None:
        optimizers = list(trainer.optimizers)
        automatic = trainer.lightning_module.automatic_optimization
        for config in trainer.lr_scheduler_configs:
            scheduler = getattr(config, "scheduler", None)
            if scheduler is None:
                continue
            self.started[id(scheduler)] = getattr(scheduler, "last_epoch", None)
            index = optimizer_index(optimizers, scheduler)
            # Only Lightning's own stepping is known to use `monitor`; under manual optimization the user passes
            # whatever value they like.
            if getattr(config, "reduce_on_plateau", False) and config.monitor and automatic and index is not None:
                plateau = _Plateau(scheduler, index, str(config.monitor), getattr(scheduler, "last_epoch", None))
                plateau.samples.append((None, self._rate(plateau)))
                self.plateaus.append(plateau)

    @staticmethod
    def _rate(plateau: _Plateau) -> Optional[float]:
        return finite_or_none(plateau.scheduler.optimizer.param_groups[0].get("lr"))

    def sample(self, trainer: "pl.Trainer") -> None:
        """Read each plateau scheduler's metric and rate if it stepped since the last look."""
        for plateau in self.plateaus:
            now = getattr(plateau.scheduler, "last_epoch", None)
            if now == plateau.seen or len(plateau.samples) >= _MAX_SAMPLES:
                continue
            plateau.seen = now
            plateau.samples.append((finite_or_none(trainer.callback_metrics.get(plateau.monitor)), self._rate(plateau)))

    def verdicts(self, trainer: "pl.Trainer", rates: dict[tuple[int, int], LrTrajectory],
                 batches: int) -> list[tuple[int, Verdict]]:
        """(optimizer index, verdict) for each plateau in the wrong mode and each scheduler never stepped."""
        found = []
        for plateau in self.plateaus:
            samples = [(m, lr) for m, lr in plateau.samples if lr is not None]
            verdict = scheduler_use.judge_plateau_mode(
                plateau.monitor, str(getattr(plateau.scheduler, "mode", "")), samples,
                f"optimizer {plateau.optimizer} ({type(plateau.scheduler.optimizer).__name__})")
            if verdict is not None:
                found.append((plateau.optimizer, verdict))
        if not trainer.lightning_module.automatic_optimization:  # else Lightning steps the schedulers itself
            found += self._never_stepped(trainer, rates, batches)
        return found

    def _never_stepped(self, trainer: "pl.Trainer", rates: dict[tuple[int, int], LrTrajectory],
                       batches: int) -> list[tuple[int, Verdict]]:
        found = []
        optimizers = list(trainer.optimizers)
        for config in trainer.lr_scheduler_configs:
            scheduler = getattr(config, "scheduler", None)
            if scheduler is None or id(scheduler) not in self.started:
                continue
            if getattr(scheduler, "last_epoch", None) != self.started[id(scheduler)]:
                continue  # stepped
            index = optimizer_index(optimizers, scheduler)
            if index is None:
                continue
            # SequentialLR and ChainedScheduler keep no base_lrs: the rate their parts scale is each group's
            # initial_lr, set by the first scheduler built on the optimizer.
            groups = optimizers[index].param_groups
            base = getattr(scheduler, "base_lrs", None) or [g.get("initial_lr") for g in groups]
            stuck = self._stuck_rates(rates, index, groups, base, scheduler)
            if stuck:
                ratio, lr, peak = min(stuck)
                verdict = scheduler_use.judge_never_stepped(
                    scheduler, f"optimizer {index} ({type(optimizers[index]).__name__})", lr=lr, base_lr=peak,
                    epochs=self.epochs, batches=batches)
                if verdict is not None:
                    found.append((index, verdict))
        return found

    @staticmethod
    def _stuck_rates(rates: dict[tuple[int, int], LrTrajectory], index: int, groups: list, base: list,
                     scheduler: Any) -> list[tuple[float, float, float]]:
        """(rate / the rate to reach, rate, the rate to reach) per group, or [] when a group's rate moved."""
        stuck = []
        for j, base_lr in enumerate(base):
            history = rates.get((index, j))
            if history is None or history.last is None or not isinstance(base_lr, (int, float)) or j >= len(groups):
                return []
            if not (history.initial == history.last == history.max_lr):
                return []  # the rate moved: something else sets it
            peak = _peak(scheduler, groups[j], j, float(base_lr))
            stuck.append((history.last / peak if peak > 0 else math.inf, history.last, peak))
        return stuck

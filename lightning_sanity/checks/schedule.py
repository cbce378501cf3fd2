"""The learning-rate schedule judged from its whole trajectory and from the scheduler's own configuration.

``lr-schedule`` follows each param group's rate over the run (:class:`LrTrajectory`, fed with host floats) and
reads what the run knows about its schedulers (:func:`scheduler_facts`: type, ``interval``, ``frequency`` and
lengths such as ``T_max``, ``total_iters``, ``total_steps``, all converted to training batches). From both:

- ``collapse``: the rate falls to a tiny fraction of its peak early in the planned run and stays there;
- ``repeated``: the rate falls and restarts with a period far shorter than the run (a one-shot
  ``CosineAnnealingLR`` that rises again, or cycles shorter than an epoch and than 5 % of the run);
- ``warmup``: a warm-up that never finishes (its configured length exceeds the planned run, or the rate is
  still rising at the end of the planned run);
- ``zero``: a group whose rate is 0 all run while its parameters are trainable.

Example::

    >>> t = LrTrajectory("param group 0 of optimizer 0 (SGD)")
    >>> for batch in range(100):
    ...     t.update(0.1 * (batch + 1) / 100, step=batch, progress=batch / 100, batch=batch)
    >>> judge_warmup(t, facts=[], planned=100, seen=100, complete=True).kind
    'warmup'
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional

from lightning_sanity.checks.lr_history import LrHistory
from lightning_sanity.checks.verdict import Verdict

#: A rate at or below this fraction of its peak has "fallen" (one order of magnitude); one back at or above
#: :data:`RESTART_RATIO` of the peak afterwards has restarted: one cycle of a repeated collapse.
FALL_RATIO = 0.1
RESTART_RATIO = 0.5
#: Repeated collapse from the trajectory alone: at least this many cycles, each shorter than one epoch and than
#: this share of the planned run. Cyclical schedules are sized in epochs (SGDR restarts after T_0 >= 1 epoch,
#: Smith's CyclicLR takes half-cycles of 2-10 epochs): a cycle shorter than an epoch is a length meant in epochs
#: and stepped every batch.
MIN_CYCLES = 3
CYCLE_SHARE = 0.05
#: Warm-up from the trajectory: the planned run seen to at least this share, the rate at its peak at the end and
#: rising in the last tenth, from below half its end value.
WARMUP_SEEN = 0.95
#: Schedulers that run once over the run: a rise after their low point means their length is shorter than the run.
ONE_SHOT = ("CosineAnnealingLR",)
#: Lightning's StochasticWeightAveraging swaps in SWALR, which anneals the rate to ``swa_lrs`` (up or down).
SWA_NAMES = ("SWALR",)


@dataclasses.dataclass
class LrTrajectory(LrHistory):
    """:class:`LrHistory` plus the batches where the rate rose, fell an order of magnitude and restarted."""

    first_batch: Optional[int] = None
    peak_batch: Optional[int] = None
    last_batch: Optional[int] = None
    last_rise_batch: Optional[int] = None
    fallen: bool = False
    restarts: list[int] = dataclasses.field(default_factory=list)

    def update(self, lr: float, *, step: int, progress: Optional[float], batch: int = 0) -> None:
        if not math.isfinite(lr):
            return
        previous = self.last
        super().update(lr, step=step, progress=progress)
        if self.first_batch is None:
            self.first_batch = batch
        if previous is not None and lr > previous * (1 + 1e-9):
            self.last_rise_batch = batch
        if lr >= self.max_lr:
            self.peak_batch = batch
        self.last_batch = batch
        if self.max_lr <= 0:
            return
        if lr <= FALL_RATIO * self.max_lr:
            self.fallen = True
        elif self.fallen and lr >= RESTART_RATIO * self.max_lr:
            self.fallen = False
            if len(self.restarts) < 4096:
                self.restarts.append(batch)

    def period(self) -> Optional[float]:
        """Median batches per fall-and-restart cycle, or None before the first restart."""
        if not self.restarts:
            return None
        starts = [self.first_batch or 0, *self.restarts]
        gaps = sorted(b - a for a, b in zip(starts, starts[1:]))
        return float(gaps[len(gaps) // 2])


def _unit_batches(config: Any, batches_per_epoch: Optional[float], accumulate: int) -> Optional[float]:
    frequency = max(int(getattr(config, "frequency", 1) or 1), 1)
    if getattr(config, "interval", "epoch") == "step":
        return float(frequency * max(accumulate, 1))
    if batches_per_epoch is None or not math.isfinite(batches_per_epoch) or batches_per_epoch <= 0:
        return None
    return float(frequency * batches_per_epoch)


def _warmup_units(scheduler: Any) -> Optional[tuple[float, str]]:
    """Scheduler steps until its rate stops rising, with words naming the setting, or None (no warm-up known)."""
    name = type(scheduler).__name__
    if name == "LinearLR" and getattr(scheduler, "start_factor", 1) < getattr(scheduler, "end_factor", 1):
        return float(scheduler.total_iters), f"LinearLR total_iters={scheduler.total_iters}"
    if name == "OneCycleLR" and hasattr(scheduler, "total_steps"):
        peak = scheduler._schedule_phases[0]["end_step"] if getattr(scheduler, "_schedule_phases", None) else None
        peak = float(peak) if peak is not None else 0.3 * scheduler.total_steps
        return peak, f"OneCycleLR total_steps={scheduler.total_steps} (peak at step {peak:.0f})"
    if name == "SequentialLR":
        subs = getattr(scheduler, "_schedulers", [])
        milestones = getattr(scheduler, "_milestones", [])
        first = _warmup_units(subs[0]) if subs else None
        if first is not None and milestones:
            units = min(first[0], float(milestones[0]))
            return units, f"SequentialLR warm-up ({first[1]}, milestones={list(milestones)})"
    return None


def optimizer_index(optimizers: list, scheduler: Any) -> Optional[int]:
    """The position in ``optimizers`` of the optimizer ``scheduler`` drives, or None."""
    opt = getattr(scheduler, "optimizer", None)
    return next((i for i, o in enumerate(optimizers) if o is opt), None)


def scheduler_facts(configs: list, optimizers: list, batches_per_epoch: Optional[float],
                    accumulate: int, manual: bool = False) -> list[dict[str, Any]]:
    """What the run knows about each scheduler: its optimizer index, type, and lengths in training batches.

    Each entry: ``optimizer`` (index or None), ``name``, ``interval``, ``unit`` (batches per scheduler step, None
    when unknown), ``warmup_batches`` / ``warmup_words`` (a rising phase's length), ``t_max_batches`` (a one-shot
    annealing length). Under manual optimization the user steps the schedulers wherever they like: their
    ``interval`` means nothing, so no length is converted (``unit`` None).
    """
    facts = []
    for config in configs:
        scheduler = getattr(config, "scheduler", None)
        if scheduler is None:
            continue
        index = optimizer_index(optimizers, scheduler)
        unit = None if manual else _unit_batches(config, batches_per_epoch, accumulate)
        entry: dict[str, Any] = {"optimizer": index, "name": type(scheduler).__name__,
                                 "interval": getattr(config, "interval", "epoch"),
                                 "frequency": getattr(config, "frequency", 1), "unit": unit}
        base = getattr(scheduler, "base_lrs", None)
        if isinstance(base, (list, tuple)) and all(isinstance(b, (int, float)) for b in base):
            entry["base_lrs"] = [float(b) for b in base]
        warm = _warmup_units(scheduler)
        if warm is not None and unit is not None:
            entry["warmup_batches"], entry["warmup_words"] = warm[0] * unit, warm[1]
        if entry["name"] in ONE_SHOT and unit is not None:
            entry["t_max"] = scheduler.T_max
            entry["t_max_batches"] = float(scheduler.T_max) * unit
        facts.append(entry)
    return facts


def _interval_words(fact: dict[str, Any]) -> str:
    return f"interval='{fact['interval']}'" + (f", frequency={fact['frequency']}" if fact["frequency"] != 1 else "")


def judge_repeated(t: LrTrajectory, *, facts: list[dict[str, Any]], planned: int,
                   batches_per_epoch: Optional[float], seen: str) -> Optional[Verdict]:
    """A rate that falls and restarts with a period far shorter than the run; None when it does not."""
    period = t.period()
    if period is None:
        return None
    cycles = len(t.restarts)
    data = {"restarts": cycles, "period_batches": period, "planned_batches": planned,
            "first_restart_batch": t.restarts[0], "max_lr": t.max_lr}
    one_shot = next((f for f in facts if f["name"] in ONE_SHOT), None)
    if one_shot is not None:
        data.update(scheduler=one_shot["name"], t_max=one_shot.get("t_max"))
        return Verdict(
            "repeated",
            f"The learning rate of {t.where} fell an order of magnitude and rose back to its peak {cycles} time(s), "
            f"every {period:.0f} batches on a planned run of {planned}: {one_shot['name']} anneals once over T_max="
            f"{one_shot.get('t_max')} scheduler steps ({_interval_words(one_shot)}), then climbs back up; {seen}.",
            "Size T_max with the run: `T_max=trainer.estimated_stepping_batches` with interval='step', or "
            "T_max=max_epochs with interval='epoch' (a T_max counted in epochs but stepped every batch cycles "
            "every 2*T_max batches).",
            data,
        )
    short_epoch = batches_per_epoch is not None and math.isfinite(batches_per_epoch) and period < batches_per_epoch
    if cycles >= MIN_CYCLES and period <= CYCLE_SHARE * planned and short_epoch:
        named = facts[0] if facts else None
        how = f" ({named['name']}, {_interval_words(named)})" if named else ""
        return Verdict(
            "repeated",
            f"The learning rate of {t.where}{how} fell an order of magnitude and restarted {cycles} times, every "
            f"{period:.0f} batches: shorter than an epoch ({batches_per_epoch:.0f} batches) and than "
            f"{CYCLE_SHARE:.0%} of the planned {planned}; {seen}.",
            "A cycle length meant in epochs is counted in scheduler steps: with interval='step' give CyclicLR's "
            "step_size_up / CosineAnnealingWarmRestarts' T_0 in batches (e.g. 2-10 epochs' worth), or step it "
            "every epoch.",
            data,
        )
    return None


def judge_warmup(t: LrTrajectory, *, facts: list[dict[str, Any]], planned: int, seen: int,
                 complete: bool, seen_words: str = "", base_lr: Optional[float] = None) -> Optional[Verdict]:
    """A warm-up that never finishes within the planned run; None when it does (or cannot be told).

    ``base_lr``: the rate the scheduler scales (its ``base_lrs`` entry for this group), which a finished warm-up
    reaches: a rate that rose all run and ends below half of it never got there, however late it last rose (a
    warm-up sized in steps but stepped once an epoch rises at the epochs' starts only)."""
    for fact in facts:
        length = fact.get("warmup_batches")
        if length is not None and length > planned:
            return Verdict(
                "warmup",
                f"The warm-up of {t.where} lasts {length:.0f} batches ({fact['warmup_words']}, "
                f"{_interval_words(fact)}) but the planned run is {planned} batches: the rate never reaches its "
                f"peak{(' (now ' + format(t.last, '.3g') + ')') if t.last is not None else ''}; {seen_words}.",
                "Size the warm-up with the run's length (`trainer.estimated_stepping_batches`), and give it in the "
                "unit the scheduler steps in (batches with interval='step').",
                {"warmup_batches": length, "planned_batches": planned, "scheduler": fact["name"],
                 "last_lr": t.last},
            )
    if not complete or t.last is None or t.initial is None or t.last_rise_batch is None or t.max_lr <= 0:
        return None
    start = t.first_batch or 0
    span = max(seen - start, 1)
    short = base_lr is not None and base_lr > 0 and t.last < 0.5 * base_lr
    if (t.last >= t.max_lr * (1 - 1e-9) and (t.last_rise_batch - start >= 0.9 * span or short)
            and t.initial < 0.5 * t.last):
        return Verdict(
            "warmup",
            f"The learning rate of {t.where} was still rising at the end of the planned run ({t.initial:.3g} -> "
            f"{t.last:.3g}, its peak, last raised at batch {t.last_rise_batch} of {planned}"
            f"{f'; {t.last / base_lr:.0%} of the scheduler base rate {base_lr:.3g}' if short else ''}): the warm-up "
            f"never finished; {seen_words}.",
            "Check the warm-up's length against the run (a warm-up given in epochs but stepped every batch, or in "
            "steps for a much longer run); size it with `trainer.estimated_stepping_batches`.",
            {"initial_lr": t.initial, "last_lr": t.last, "last_rise_batch": t.last_rise_batch,
             "planned_batches": planned},
        )
    return None


def caught_up(t: LrTrajectory, others: list[LrTrajectory], seen: int) -> bool:
    """Whether ``t`` rose to meet the rate another group of its optimizer held still: a group added during the run
    and ramped until it is aligned with the others (Lightning's ``BackboneFinetuning``) finished its ramp, however
    late. A group still rising together with the others (one warm-up over all of them) is not caught up.

    >>> main, added = LrTrajectory("group 0"), LrTrajectory("group 1")
    >>> for b in range(10):
    ...     main.update(1e-3, step=b, progress=None, batch=b)
    >>> for b, lr in [(6, 1e-4), (7, 3e-4), (8, 9e-4), (9, 1e-3)]:
    ...     added.update(lr, step=b, progress=None, batch=b)
    >>> caught_up(added, [main], seen=10), caught_up(added, [added], seen=10)
    (True, False)
    >>> twin = LrTrajectory("group 2")  # stepped once an epoch with `added`: the same warm-up, not a catch-up
    >>> for b, lr in [(6, 1e-4), (7, 3e-4), (8, 9e-4), (9, 1e-3)]:
    ...     twin.update(lr, step=b, progress=None, batch=b)
    >>> caught_up(added, [twin], seen=20)
    False
    """
    if t.last is None or t.last <= 0:
        return False
    for other in others:
        if other is t or other.last is None or abs(other.last - t.last) > 1e-6 * t.last:
            continue
        if other.last_rise_batch is not None and other.last_rise_batch == t.last_rise_batch:
            continue  # it rose at the same batch: one warm-up over both groups
        start = other.first_batch or 0
        if other.last_rise_batch is None or other.last_rise_batch - start < 0.9 * max(seen - start, 1):
            return True
    return False


def zero_group_verdict(where: str, names: list[str], count: int) -> Verdict:
    """A group whose rate was 0 all run while ``count`` of its parameters (``names``) are trainable."""
    shown = ", ".join(f"`{n}`" for n in names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    return Verdict(
        "zero",
        f"The learning rate of {where} was 0 for the whole run, yet its {count} parameter(s) ({shown}) are "
        "trainable (requires_grad=True): they never change.",
        "Give the group a non-zero lr (a typo, or a discriminative-lr factor of 0?); if the parameters are meant "
        "to stay frozen, set requires_grad_(False) on them (this also saves their gradients).",
        {"parameters": names[:20], "trainable": count},
    )

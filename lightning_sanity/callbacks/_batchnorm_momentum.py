"""The momentum half of :class:`~lightning_sanity.callbacks.batchnorm.BatchNormMonitor`: for the layers whose momentum
gives the newest batch more weight than all earlier ones, how far the running variance moves at each step; and the
finding once enough steps are seen. The judgement and its thresholds are in
:mod:`lightning_sanity.checks.batchnorm_momentum`.

Costs nothing for layers with an ordinary momentum (none are watched); for the others a few float operations per
step on figures the monitor already has on the host.
"""

from __future__ import annotations

from typing import Any, Optional

from lightning_sanity.callbacks._batchnorm_state import LayerState, StepFigures
from lightning_sanity.checks import batchnorm_momentum as BM
from lightning_sanity.checks.modes import summarize_names
from lightning_sanity.findings import Severity

#: Moves kept per layer: the median of the first few hundred steps is as good as that of the whole run.
_KEEP = 256


class MomentumWatch:
    """Per-step moves of the running variance of the layers with a single-batch momentum."""

    def __init__(self, state: LayerState) -> None:
        self.layers = [i for i, m in enumerate(state.momentum) if BM.single_batch_momentum(m)]
        self.moves: dict[int, list[float]] = {i: [] for i in self.layers}
        self.done = not self.layers

    def observe(self, state: LayerState, step: StepFigures) -> None:
        if self.done:
            return
        for i in self.layers:
            # One forward in the step (the update is exact), and past the first two updates: the first replaces
            # the initial 1.0 with the data's scale, a move that says nothing of the batches' noise.
            if step.delta[i] == 1 and step.tracked_after[i] > state.warmup[i] + 1 and len(self.moves[i]) < _KEEP:
                move = BM.relative_move(step.mean_before[i], step.mean_after[i], state.floor[i])
                if move == move:  # NaN statistics are the non-finite criterion's business
                    self.moves[i].append(move)

    def ready(self) -> bool:
        return not self.done and all(len(self.moves[i]) >= BM.MIN_STEPS for i in self.layers)

    def finding(self, state: LayerState) -> Optional[tuple[Severity, str, str, Optional[str], dict[str, Any]]]:
        """``(severity, message, advice, where, data)`` for the layers that follow single batches, or None. Once."""
        self.done = True
        hits = [i for i in self.layers if BM.follows_single_batches(state.momentum[i], self.moves[i])]
        if not hits:
            return None
        names = [state.names[i] for i in hits]
        momenta = sorted({state.momentum[i] for i in hits})
        medians = {state.names[i]: round(sorted(self.moves[i])[len(self.moves[i]) // 2], 4) for i in hits}
        m = momenta[-1]
        typical = sorted(medians.values())[len(medians) // 2]
        message = (
            f"{len(hits)} BatchNorm layer(s) ({summarize_names(names)}) have momentum "
            f"{', '.join(f'{v:g}' for v in momenta)}: in PyTorch the momentum is the weight of the NEW batch, so the "
            f"running statistics average only about {BM.averaged_batches(m):g} batch(es) (PyTorch's default 0.1 "
            f"averages {BM.averaged_batches(0.1):g}) and follow each training batch: the running variance moved by a "
            f"median {typical:.1%} at every step, and evaluation normalises with the last batch's noise.")
        advice = (
            "A Keras / TensorFlow momentum is the weight of the OLD estimate: use `momentum = 1 - keras_momentum` "
            "(0.01 for Keras' 0.99), PyTorch's default 0.1, or `momentum=None` for a cumulative average.")
        data = {"criterion": "momentum", "layers": names, "momentum": momenta,
                "averaged_batches": BM.averaged_batches(m), "median_step_move": medians,
                "threshold_momentum": BM.SINGLE_BATCH_MOMENTUM, "threshold_move": BM.MOVE_MIN}
        return Severity.WARNING, message, advice, names[0], data

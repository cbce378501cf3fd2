"""What a replay found: :class:`ReplayResult`, and how ``print(result)`` explains it."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass
class ReplayResult:
    """What a replay found. ``reproduced``, ``module`` and ``op`` are the contract's; the rest helps reading it.

    Attributes:
        reproduced: the step went wrong again (a non-finite loss, output or gradient; for a ``batchnorm-variance``
            bundle, the layer's variance test fired again).
        module: qualified name (as in ``named_modules()``) of the first module, in execution order, whose output
            was non-finite; None when no submodule's output was.
        op: the autograd op whose gradient first became non-finite during backward (e.g. ``"LogBackward0"``).
    """

    reproduced: bool
    module: Optional[str] = None
    op: Optional[str] = None
    loss: Optional[float] = None
    forward_op: Optional[str] = None
    source: Optional[str] = None
    nonfinite_inputs: list[str] = dataclasses.field(default_factory=list)
    nonfinite_weights: list[str] = dataclasses.field(default_factory=list)
    nonfinite_gradients: list[str] = dataclasses.field(default_factory=list)
    batchnorm: Optional[dict[str, Any]] = None
    check: Optional[str] = None
    where: Optional[str] = None
    epoch: Optional[int] = None
    batch_idx: Optional[int] = None
    global_step: Optional[int] = None
    seed: Optional[int] = None
    rank: Optional[int] = None
    bundle: Optional[str] = None
    device: str = "cpu"
    notes: list[str] = dataclasses.field(default_factory=list)

    def __str__(self) -> str:
        when = f"epoch {self.epoch}, batch {self.batch_idx}, global step {self.global_step}"
        head = f"Replay of {self.bundle} ({self.check} at {when}; seed {self.seed}; rank {self.rank}; on {self.device})"
        lines = [head, f"  reproduced: {'yes' if self.reproduced else 'no'}"]
        lines.append(f"  loss: {self.loss}")
        if self.nonfinite_inputs:
            lines.append(f"  non-finite values already in the batch: {', '.join(self.nonfinite_inputs)}")
        if self.nonfinite_weights:
            lines.append(f"  non-finite weights before the step: {', '.join(self.nonfinite_weights)}")
        lines.append(f"  first module with a non-finite output: {self.module if self.module is not None else '-'}")
        lines.append(f"  first torch call with a non-finite result: {self.forward_op or '-'}")
        lines.append(f"  first autograd op with a non-finite gradient: {self.op or '-'}")
        if self.source:
            lines.append(f"  forward code of that op: {self.source}")
        if self.nonfinite_gradients:
            more = "" if len(self.nonfinite_gradients) < 10 else ", ..."
            lines.append(f"  parameters with non-finite gradients: {', '.join(self.nonfinite_gradients)}{more}")
        if self.batchnorm:
            b = self.batchnorm
            lines.append(
                f"  BatchNorm {b['layer']}: batch variance x{b['batch_ratio']:.3g} the running estimate, running "
                f"variance x{b['jump']:.3g} in this step"
            )
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

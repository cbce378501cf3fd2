"""``batchnorm-variance`` on micro-batches: how many samples each BatchNorm layer normalises over in training mode.

Read once, on the fit's first training batch, from the shape of each layer's input (a forward pre-hook that only
reads ``shape[0]``, removed at that batch's end); the judgement is
:func:`lightning_sanity.checks.batchnorm_batch.small_batchnorm_batches`. Used by
:class:`lightning_sanity.callbacks.batchnorm.BatchNormMonitor`.

Example::

    >>> from torch import nn
    >>> import torch
    >>> bn = nn.BatchNorm1d(3)
    >>> watch = MicroBatchWatch([("bn", bn)])
    >>> watch.start()
    >>> _ = bn(torch.randn(2, 3))
    >>> watch.stop()
    {'bn': 2}
"""

from __future__ import annotations

from typing import Any, Optional

from lightning_sanity.checks.batchnorm_batch import MAX_NOISY_SAMPLES, small_batchnorm_batches, \
    standard_error_share
from lightning_sanity.checks.modes import summarize_names
from lightning_sanity.findings import Severity


class MicroBatchWatch:
    """Samples per training batch seen by each BatchNorm layer in training mode, over one forward."""

    def __init__(self, layers: list[tuple[str, Any]]) -> None:
        self.layers = layers
        self.samples: dict[str, int] = {}
        self._handles: list[Any] = []
        self.done = False

    def start(self) -> None:
        for name, module in self.layers:
            self._handles.append(module.register_forward_pre_hook(self._hook(name)))

    def _hook(self, name: str) -> Any:
        def read(module: Any, args: tuple) -> None:
            if module.training and args and hasattr(args[0], "shape") and len(args[0].shape) >= 2:
                n = int(args[0].shape[0])
                self.samples[name] = min(n, self.samples.get(name, n))
        return read

    def stop(self) -> dict[str, int]:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.done = True
        return self.samples


def report_small_batches(callback: Any, trainer: Any, check: str, samples: dict[str, int]) -> Optional[Any]:
    """Warn about the BatchNorm layers that normalise over 2..4 samples in training mode."""
    small = small_batchnorm_batches(samples)
    if not small:
        return None
    names = list(small)
    n = min(small.values())
    accumulate = int(getattr(trainer, "accumulate_grad_batches", 1) or 1)
    through = (f" Gradient accumulation ({accumulate} batches) gives the optimizer {n * accumulate} samples per step, "
               f"but BatchNorm still normalises each batch of {n} on its own." if accumulate > 1 else "")
    return callback.report(
        trainer, check, Severity.WARNING,
        f"{len(names)} BatchNorm layer(s) normalise training batches of only {n} samples: "
        f"{summarize_names(names)}. The batch mean over {n} samples is off by {standard_error_share(n):.0%} of the "
        f"features' spread (one standard error), so each sample's normalisation depends on its batch mates as much "
        f"as on itself, and the running statistics used at evaluation average these noisy estimates.{through}",
        "Use batches of 8 samples or more per BatchNorm (a larger `batch_size`, rather than "
        "`accumulate_grad_batches`), or replace BatchNorm with GroupNorm/LayerNorm, which do not depend on the batch.",
        where=names[0], key="small-batches",
        data={"modules": names[:50], "module_count": len(names), "samples": n, "accumulate_grad_batches": accumulate,
              "max_noisy_samples": MAX_NOISY_SAMPLES},
    )

"""Column moments of the training and validation inputs, for ``val-divergence``'s refitted preprocessing.

Fed by :class:`~lightning_sanity.callbacks.val_divergence.ValDivergence` with the first training epoch's batches
and the first full validation run's (the batches Lightning delivers anyway; the sanity check's are not counted):
per-column sums, sums of squares (float64), min and max of 2-D float inputs, kept on the device and read once at the
end of fit; the judgement is :func:`lightning_sanity.checks.refit_transform.judge_refit`. A split is judged only when
its whole pass was seen (no ``limit_*_batches``, no ``max_steps`` cut, one loader with a length).

Example::

    >>> import torch
    >>> moments = InputMoments()
    >>> moments.add((torch.randn(8, 4), torch.zeros(8)), "train")
    >>> moments.judge() is None  # no complete pass of either split yet
    True
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch

from lightning_sanity.batch import input_of
from lightning_sanity.callbacks._row_blocks import BlockedRows
from lightning_sanity.checks import refit_transform as R

log = logging.getLogger(__name__)

#: most columns followed: tabular rows; wider inputs are flattened images or embeddings, not a fitted table.
MAX_COLUMNS = 4096


class _SplitMoments(BlockedRows):
    """One split's column moments, taken a block of rows at a time: the fifteen or so small kernels of
    :func:`~lightning_sanity.checks.refit_transform.column_moments` cost a millisecond-step model about 0.1 ms a
    step when taken per batch; a step now copies its rows."""

    def __init__(self) -> None:
        super().__init__()
        self.moments: Optional[torch.Tensor] = None

    def width(self, x: torch.Tensor) -> int:
        return int(x.shape[1])

    def fill(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x.detach() if x.requires_grad else x  # detaching is an operator call a step: only where it matters
        return x if out is None else out.copy_(x)

    def take(self, rows: torch.Tensor) -> None:
        self.moments = R.merge(self.moments, R.column_moments(rows))


class InputMoments:
    """Moments per split of the first pass; ``off`` once an input is not a 2-D float table."""

    def __init__(self) -> None:
        self._splits = {"train": _SplitMoments(), "val": _SplitMoments()}
        self.first: dict[str, Optional[torch.Tensor]] = {"train": None, "val": None}
        self.rows = {"train": 0, "val": 0}
        self.first_rows = {"train": 0, "val": 0}
        self.batches = {"train": 0, "val": 0}
        self.complete: dict[str, bool] = {}  # split -> its first pass ended, seen whole or not
        self.off = False

    def add(self, batch: Any, split: str) -> None:
        try:
            self._add(batch, split)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence input moments failed", exc_info=True)
            self.stop()

    def _add(self, batch: Any, split: str) -> None:
        if self.off or split in self.complete:
            return
        x = input_of(batch)
        if (not isinstance(x, torch.Tensor) or x.dim() != 2 or not x.is_floating_point()
                or not 2 <= x.shape[1] <= MAX_COLUMNS or x.shape[0] == 0):
            self.stop()
            return
        n = int(x.shape[0])
        if not self.batches[split]:
            self.first[split], self.first_rows[split] = R.column_moments(x), n
        self._splits[split].add(x)
        self.rows[split] += n
        self.batches[split] += 1

    def end(self, split: str, complete: bool) -> None:
        """The split's first pass ended; ``complete``: every batch of its loader was seen."""
        if split not in self.complete:
            self._splits[split].close()
            self.complete[split] = complete

    def stop(self) -> None:
        self.off = True
        self._splits = {"train": _SplitMoments(), "val": _SplitMoments()}
        self.first = {"train": None, "val": None}

    def judge(self) -> Optional[dict[str, Any]]:
        if self.off or not (self.complete.get("train") and self.complete.get("val")):
            return None
        splits = ("train", "val")
        firsts = tuple(self.first[s] if self.batches[s] > 1 else None for s in splits)
        return R.judge_refit(self._splits["train"].moments, self.rows["train"], self._splits["val"].moments,
                             self.rows["val"],
                             firsts, tuple(self.first_rows[s] for s in splits))


def whole_pass(loader: Any, planned: Any, seen: int) -> bool:
    """Every batch of one loader seen: the planned count (after ``limit_*_batches``) is the loader's length."""
    try:
        return isinstance(planned, int) and seen == planned == len(loader) > 0
    except TypeError:  # a loader without a length (iterable dataset, several loaders combined)
        return False


def train_pass_complete(trainer: Any, seen: int) -> bool:
    try:
        return whole_pass(trainer.train_dataloader, trainer.num_training_batches, seen)
    except Exception:  # an unusual loop: not known complete
        return False


def val_pass_complete(trainer: Any, seen: int) -> bool:
    try:
        loaders, planned = trainer.val_dataloaders, trainer.num_val_batches
        if isinstance(loaders, (list, tuple, dict)) or len(planned) != 1:
            return False  # several validation loaders: the first is not the whole validation split
        return whole_pass(loaders, planned[0], seen)
    except Exception:  # an unusual loop: not known complete
        return False


def report_refit(callback: Any, trainer: Any) -> None:
    """The refitted-preprocessing half of ``val-divergence``: a warning when both splits carry the exact fingerprint
    of a transform fitted on their own rows (:func:`lightning_sanity.checks.refit_transform.judge_refit`)."""
    from lightning_sanity.findings import Severity

    moments = callback._inputs
    try:
        result = moments.judge()
    except Exception:  # the loss verdicts stand
        return
    finally:
        moments.stop()
    if result is None:
        return
    kind, n_val, cols = result["fingerprint"], result["val_rows"], result["matching_columns"]
    if kind == "standardised":
        name = "a StandardScaler (or a whitened PCA)"
        figures = (f"mean within {max(result['train_largest_abs_mean'], result['val_largest_abs_mean']):.1g} of 0 "
                   f"and variance in [{result['val_variance_range'][0]:.6g}, {result['val_variance_range'][1]:.6g}] "
                   f"(1, or (n-1)/n = {(n_val - 1) / n_val:.6g} for a ddof-1 fit such as PCA's whitening) over the "
                   "validation rows, as over the training rows")
        noise = f"about 1/sqrt(n) = {result['sampling_noise']:.2g}"
    else:
        name = f"a MinMaxScaler to {kind[8:]}"
        figures = (f"min in [{result['val_min_range'][0]:.3g}, {result['val_min_range'][1]:.3g}] and max in "
                   f"[{result['val_max_range'][0]:.6g}, {result['val_max_range'][1]:.6g}] over the validation rows, "
                   "as over the training rows")
        noise = f"about 1/n = {result['sampling_noise']:.2g}"
    shown = ", ".join(str(c) for c in result["columns"][:12]) + (", ..." if cols > 12 else "")
    callback.report(
        trainer, "val-divergence", Severity.WARNING,
        f"The validation inputs carry the exact fingerprint of {name} fitted on the validation rows themselves: "
        f"{cols} of the {result['total_columns']} input columns (columns {shown}) have {figures} ({n_val} "
        f"validation rows, {result['train_rows']} training rows), to float round-off. A transform fitted on the "
        f"training rows misses these figures on other rows by sampling noise ({noise}). The validation split was "
        "transformed with its own statistics (`fit_transform(x_val)` where `transform(x_val)` was meant): its "
        "inputs live in other coordinates than the ones the model trained on.",
        "Fit the preprocessing (scaler, PCA, pipeline) on the training split once and apply it to the validation "
        "split with `transform` (`x_val = pipeline.transform(x_val)`), never `fit_transform`; if each split is "
        "normalised per group (per subject, per recording) on purpose, ignore this.",
        where="validation inputs", at_step=False, key="refit-transform",
        data={"pattern": "refit-transform", **result},
    )

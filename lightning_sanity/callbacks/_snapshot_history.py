"""What :class:`~lightning_sanity.callbacks.predictions.PredictionDynamics` measured on its fixed batch: when it
takes snapshots (:class:`SnapshotClock`), the figures of every snapshot (:class:`SnapshotHistory`) and the
history file they are saved to. Measuring only: the judgements live in :mod:`lightning_sanity.checks.jitter`.

Example::

    >>> import torch
    >>> history = SnapshotHistory()
    >>> probs = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    >>> history.start("classification", probs, torch.tensor([0, 1]))
    >>> scalars, _, _ = history.record("classification", probs, history.targets, step=0, epoch=0, ignore_index=-100)
    >>> sorted(scalars), history.columns["step"]
    (['accuracy', 'loss'], [0])
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any, Optional

import torch

from lightning_sanity import cost
from lightning_sanity.callbacks._run_length import RunProgress
from lightning_sanity.checks.jitter import JITTER_MIN_LATE_SNAPSHOTS, flip_fraction, mean_abs_change
from lightning_sanity.checks.outputs import (
    fixed_batch_metrics,
    predicted_classes,
    true_class_probability,
    usable_targets,
)
from lightning_sanity.report import SANITY_DIR

log = logging.getLogger(__name__)

HISTORY_FILE = "predictions.npz"
#: snapshots taken over the planned run whatever the time budget (besides the first, at the start of training):
#: jitter judges 2 x ``JITTER_MIN_LATE_SNAPSHOTS`` changes between snapshots (the early and the late half of the
#: run, 4 each), so 8 after the first, and one more in case the history starts over (the loss kind, learned at
#: the first step, can change how the output is read).
_REQUIRED_SNAPSHOTS = 2 * JITTER_MIN_LATE_SNAPSHOTS + 1
#: the history file keeps the last snapshot's probabilities up to this many values (4 MB): a language model's
#: (samples, tokens, vocabulary) probabilities would make it megabytes, rewritten at every epoch end.
_MAX_SAVED_PROBABILITIES = 1 << 20
_COLUMNS = ("step", "epoch", "loss", "accuracy", "mean_change", "flip_fraction", "jitter",
            "true_class_probability", "predicted_class", "prediction")


@dataclasses.dataclass
class SnapshotClock(RunProgress):
    """When snapshots are due (every ``every`` steps), how many were taken or left out, and how much of the
    planned run they cover."""

    every: int = 0
    taken: int = 0  # snapshots taken in this fit
    over_budget: int = 0  # snapshots left out to keep the periodic work within its budget
    last_step: Optional[int] = None

    def evaluates_twice(self, epoch_end: bool, trainer: Any = None) -> bool:
        """Whether this snapshot evaluates the fixed batch twice (eval determinism, ``train-mode``): a model that
        is stochastic in eval mode (dropout forced on) is so from its first snapshot, so the first three and those
        at epoch ends do, and every fourth while the periodic budget has room for it (the second forward takes an
        eighth of the samples, and a short run's required snapshots are over the budget already)."""
        if self.taken <= 3 or epoch_end:
            return True
        return self.taken % 4 == 0 and cost.periodic_allowed(trainer, "snapshot", taken=0)

    def required(self) -> int:
        """Snapshots taken whatever the budget: enough for jitter's judgement, spread over the planned run."""
        if not self.planned:
            return 1 + _REQUIRED_SNAPSHOTS
        return 1 + math.ceil(_REQUIRED_SNAPSHOTS * min(1.0, (self.before + self.seen) / self.planned))


@dataclasses.dataclass
class SnapshotHistory:
    """How the fixed batch's output is read (``kind``), its targets, the previous snapshot to compare with, and
    one column per figure (one value per snapshot, or one tensor per snapshot)."""

    kind: Optional[str] = None
    targets: Optional[torch.Tensor] = None
    target_scale: Optional[float] = None
    supervised: Optional[int] = None  # supervised tokens of the fixed batch (sequence outputs)
    prev_probs: Optional[torch.Tensor] = None
    prev_classes: Optional[torch.Tensor] = None
    prev_top: Optional[torch.Tensor] = None  # the previous snapshot's largest probability per token (sequences)
    last_probs: Optional[torch.Tensor] = None  # the last snapshot's probabilities on the CPU, up to 2^20 values
    last_shape: Optional[tuple] = None  # ... and their shape, whatever their size
    columns: dict[str, list] = dataclasses.field(default_factory=lambda: {k: [] for k in _COLUMNS})
    changes: int = 0  # snapshots recorded or restarts since this history began
    saved: Optional[tuple] = None  # (changes, folder) of the last file written: an unchanged history is not rewritten

    def supervised_mask(self, targets: torch.Tensor, ignore: Any) -> torch.Tensor:
        # Positions whose target is ignored (padding, unmasked tokens of a masked LM) are never trained: their
        # predictions drift freely and say nothing about whether training settles.
        mask = (targets >= 0) & (targets != ignore)
        if self.supervised is None:
            self.supervised = int(mask.sum())
        return mask

    def start(self, kind: str, probs: torch.Tensor, y: Optional[torch.Tensor]) -> None:
        """Start over with a new reading of the output (the first snapshot, or a loss kind learned since)."""
        self.kind = kind
        self.changes += 1
        self.prev_probs = self.prev_classes = self.prev_top = None
        for values in self.columns.values():
            values.clear()
        targets = usable_targets(y, kind, probs)
        self.targets = targets.cpu() if targets is not None else None
        self.target_scale = None
        self.supervised = None
        if kind == "regression" and targets is not None:
            # Only the targets give a scale: the outputs' own spread at the first snapshot (an untrained model's
            # near-constant outputs) would turn ordinary learning into "jitter".
            spread = targets.float().std()
            self.target_scale = float(spread) if torch.isfinite(spread) and float(spread) > 0 else None

    def record(self, kind: str, probs: torch.Tensor, targets: Optional[torch.Tensor], step: int, epoch: int,
               ignore_index: Any) -> tuple[dict[str, float], Optional[torch.Tensor], torch.Tensor]:
        """Add one snapshot; returns its scalars (one host transfer for all), the true-class probabilities and
        what the probabilities chart shows, on the CPU: the probabilities, or for sequences each token's
        probability of its target (a language model's vocabulary is never copied to the host)."""
        self.changes += 1
        top = None
        if kind in ("classification", "sequence"):
            # The largest probability and its class in one pass (argmax alone is slower over a 32k vocabulary).
            top, classes = probs.max(-1)
        else:
            classes = predicted_classes(probs, kind)
        figures: dict[str, torch.Tensor] = {}
        if targets is not None:
            figures.update(fixed_batch_metrics(probs, targets, kind, classes if kind != "binary" else None))
        if self.prev_probs is not None and self.prev_probs.shape == probs.shape:
            figures["mean_change"] = mean_abs_change(self.prev_probs, probs, kind)
            if classes is not None and self.prev_classes is not None:
                sequence = kind == "sequence" and targets is not None
                mask = self.supervised_mask(targets, ignore_index) if sequence else None
                if kind == "sequence":
                    # A next token is often uncertain by nature: the argmax of a spread distribution swaps between
                    # near-tied tokens while the distribution barely moves. A flip counts when more than half the
                    # mass sat on one token before and on another after: a decision that changed.
                    prev_top = self.prev_top if self.prev_top is not None else self.prev_probs.amax(-1)
                    decided = (prev_top >= 0.5) & (top >= 0.5)
                    supervised = mask if mask is not None else torch.ones_like(decided)
                    figures["flip_fraction"] = ((self.prev_classes != classes) & decided & supervised).sum() / \
                        supervised.sum().clamp_min(1)
                else:
                    figures["flip_fraction"] = flip_fraction(self.prev_classes, classes, mask)
        p_true = true_class_probability(probs, targets, kind) if targets is not None and kind != "regression" else None
        # One host transfer for every figure of this snapshot.
        names = list(figures)
        values = torch.stack([figures[n].float().reshape(()) for n in names]).tolist() if names else []
        scalars = dict(zip(names, values))
        small = probs.numel() <= _MAX_SAVED_PROBABILITIES
        probs_cpu = probs.cpu() if small or kind not in ("sequence", "classification") else None
        chart = probs_cpu
        if kind == "sequence":
            chart = None
            if targets is not None:
                token = probs.gather(-1, targets.clamp_min(0)[..., None])[..., 0]
                chart = token.masked_fill(targets < 0, float("nan")).cpu()
        elif probs_cpu is None:  # a very wide classifier: the chart takes the largest of each bucket of classes anyway
            chart = probs.cpu()
        history = self.columns
        history["step"].append(step)
        history["epoch"].append(epoch)
        for name in ("loss", "accuracy", "mean_change", "flip_fraction"):
            history[name].append(scalars.get(name, float("nan")))
        if kind == "regression":
            change = scalars.get("mean_change")
            jitter = change / self.target_scale if change is not None and self.target_scale else None
            history["prediction"].append(probs_cpu[:, :16].clone())
        else:
            jitter = scalars.get("flip_fraction")
            if p_true is not None:
                history["true_class_probability"].append(p_true.cpu())
            if kind != "sequence":
                history["predicted_class"].append(classes.reshape(classes.shape[0], -1)[:, 0].cpu())
        history["jitter"].append(jitter)
        self.prev_probs, self.prev_classes = probs, classes
        self.prev_top = top if kind == "sequence" else None
        self.last_probs, self.last_shape = probs_cpu, tuple(probs.shape)
        return scalars, p_true, chart

    def save(self, log_dir: str, source: str) -> None:
        """Write ``<log_dir>/sanity/predictions.npz`` unless it holds this history already (the end of fit right
        after the last epoch end: a large output's last probabilities are megabytes); a failure is logged."""
        if self.saved == (self.changes, log_dir):
            return
        try:
            import numpy as np

            h = self.columns
            arrays: dict[str, Any] = {
                "step": np.asarray(h["step"], dtype=np.int64),
                "epoch": np.asarray(h["epoch"], dtype=np.int64),
                "kind": np.asarray(self.kind or ""),
                "source": np.asarray(source),
            }
            for name in ("loss", "accuracy", "mean_change", "flip_fraction"):
                arrays[name] = np.asarray(h[name], dtype=np.float32)
            for name in ("true_class_probability", "predicted_class", "prediction"):
                if h[name]:
                    arrays[name] = torch.stack(h[name]).numpy()
            if self.targets is not None:
                arrays["target"] = self.targets.numpy()
            if (self.last_probs is not None and self.kind != "regression"
                    and self.last_probs.numel() <= _MAX_SAVED_PROBABILITIES):
                arrays["probabilities"] = self.last_probs.numpy()
            folder = os.path.join(log_dir, SANITY_DIR)
            os.makedirs(folder, exist_ok=True)
            np.savez(os.path.join(folder, HISTORY_FILE), **arrays)
            self.saved = (self.changes, log_dir)
        except Exception as err:  # the history is a convenience; training goes on
            log.warning("lightning_sanity: could not save the prediction history: %r", err)

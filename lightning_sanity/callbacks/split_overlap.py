r"""
Split overlap
^^^^^^^^^^^^^

``split-overlap``: do validation samples also appear in the training data? Fingerprints of the samples as they pass
through the normal steps, compared once both sets have been seen.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import lightning.pytorch as pl
import torch
from typing_extensions import override

from lightning_sanity.batch import BatchFn, joined_inputs, split_batch
from lightning_sanity.callbacks._late_training import LateTraining
from lightning_sanity.callbacks._near_copies import NearCopies, judge_near_copies, report_near_copies
from lightning_sanity.callbacks._patch_tiles import PatchTiles, judge_patches, report_patches
from lightning_sanity.callbacks._reversed_pairs import ReversedPairs, report_reversed
from lightning_sanity.callbacks._row_blocks import RowBlocks
from lightning_sanity.callbacks._split_pairs import PairPrints, judge_pairs, pair_chance
from lightning_sanity.callbacks._target_copies import judge_targets, report_targets
from lightning_sanity.callbacks._token_windows import TokenWindows, report_tokens
from lightning_sanity.callbacks._window_runs import WindowRuns, report_windows
from lightning_sanity.callbacks.base import SanityCallback, Threshold
from lightning_sanity.checks import splits as S
from lightning_sanity.checks.graph_batches import dense_adjacency, dense_graph_rows, edge_index_of, graph_batch_parts
from lightning_sanity.checks.graph_batches import graph_rows
from lightning_sanity.checks.duplicate_labels import CHANCE_SIGMAS
from lightning_sanity.checks.label_in_input import held_out, label_hits

log = logging.getLogger(__name__)

#: most samples fingerprinted per split (8 bytes each, on the host once read).
_MAX_SAMPLES = 1 << 20


class SplitOverlap(SanityCallback):
    r"""Check that validation samples do not also appear in the training data (``split-overlap``).

    Every training batch of the first epoch and every validation batch up to the end of the first full validation
    run (the sanity check's batches included) is fingerprinted: one int64 hash per sample of the exact bits of its
    input (at most 1024 evenly spaced values of it), computed on the device and kept there until the epoch or
    validation run ends, then read in one transfer. No dataloader is iterated a second time: only the batches
    Lightning delivers anyway are read.

    Once both are complete (normally at the end of the first training epoch), the share of distinct validation
    samples found in training is compared with the share that coincidences can explain: the share of training
    samples that repeat within training (a data set with genuine duplicates shares some samples across any random
    split); when the multiplicities of those repeats stop dead as copies do
    (:func:`~lightning_sanity.checks.splits.copied_multiplicities`), at most the chance that a fresh sample meets a
    training one by coincidence (:func:`~lightning_sanity.checks.splits.coincidence_share`): an excess of ``share``
    (default 0.1) or more is a warning, of 0.5 or more an error (a split made twice with different seeds shares about
    80 % of its validation samples with training). Augmented training inputs never match: the check stays silent.

    Windowed measurements (``(B, T, C)`` or ``(B, C, T)``) are also read as runs of time steps
    (:mod:`lightning_sanity.checks.window_overlap`): validation windows that share stretches with training windows
    starting both earlier and later (overlapping windows cut first, then split at random) are reported when whole
    samples showed no overlap (key ``windows``). Image patches (``(B, C, H, W)``) are read as tiles of exact pixel
    values (:mod:`lightning_sanity.checks.patch_overlap`): validation patches that share a region with training
    patches on both sides (a sliding window cut first, then split at random) are reported the same way (key
    ``patches``). Under ``reload_dataloaders_every_n_epochs``, the first reloaded training loader that has grown is
    fingerprinted for one epoch and compared with the validation run's fingerprints (key ``late_training``:
    validation samples that joined training later). A batch of many small graphs (PyG layout: ``x``, ``edge_index``
    and a ``batch`` vector) is fingerprinted one row per graph, its nodes and edges; one graph per split whose
    validation graph holds every training node (inductive node classification) is not judged. Dense graphs (nodes
    ``(B, n, F)``, a symmetric ``(B, n, n)`` adjacency) are fingerprinted whatever the order of their nodes.

    Dense float targets (clean images, windows) are fingerprinted with the inputs and judged the same way when the
    inputs showed no overlap (:mod:`lightning_sanity.callbacks._target_copies`, key ``targets``): noisy copies of
    each record made before the split share their targets, not their inputs.

    Skipped under DDP (each rank sees one shard of each split), with no validation data, or when the input cannot
    be found in the batch. No TensorBoard tags.

    Thresholds (``thresholds={"split-overlap": {...}}`` or :meth:`set_thresholds`): ``share``.

    Args:
        get_input: ``batch -> input`` when the batch is not a tensor, an ``(x, y, ...)`` tuple or a dict with a
            common input key.

    Raises:
        ValueError: ``get_input`` is not callable.

    Cost: per training step of the first epoch, a copy of each sample's sampled values; every 2048 samples, one
    hash of them all (a multiply and a sum on the device, no sync); one hash per validation batch of the first
    validation run; one host transfer per epoch. Image patches add a tile hash of 16 samples a step; token rows
    padded to each batch's longest are padded to 1,024 values first.

    Example::

        >>> from lightning import Trainer
        >>> from lightning_sanity.callbacks.split_overlap import SplitOverlap
        >>> trainer = Trainer(callbacks=[SplitOverlap()], logger=False)
    """

    checks = ("split-overlap",)
    threshold_specs = {
        "split-overlap": {
            "share": Threshold(0.1, "share of validation samples also in training (beyond the training data's own "
                               "repetition rate) that warns", maximum=1.0),
        },
    }

    def __init__(self, get_input: BatchFn = None) -> None:
        if get_input is not None and not callable(get_input):
            raise ValueError(f"`get_input` must be a callable or None, got {get_input!r}.")
        self.get_input = get_input
        self._reset()

    def _reset(self) -> None:
        self.revive()
        # Training rows are copied per step and hashed in blocks (steps are many); validation batches are few.
        self._train = RowBlocks(halves=True)
        self._val: list[torch.Tensor] = []
        self._train_count = self._val_count = 0
        self._train_done = self._val_done = self._judged = False
        self._train_fp: Optional[torch.Tensor] = None
        self._val_fp: Optional[torch.Tensor] = None
        self._reason: Optional[str] = None
        self._pairs = PairPrints()  # the targets' fingerprints: for inputs that repeat (ids), and dense targets
        self._train_batches = self._val_batches = 0  # first training epoch; first full validation run
        self._measurements = False  # the first training batch holds measured (non-integer float) values
        self._val_last: Optional[torch.Tensor] = None  # that run's last batch's fingerprints
        self._windows = WindowRuns()  # runs of time steps of windowed measurements (overlapping windows)
        self._tokens = TokenWindows()  # first and last tokens of token-id windows (overflowing tokens)
        self._reversed = ReversedPairs()  # (B, 2) id pairs: undirected edges split as directed rows
        self._near = NearCopies()  # sketches of float samples: jittered copies made before the split
        self._patches = PatchTiles()  # tiles of image patches: overlapping patches cut before the split
        self._late = LateTraining()  # a training loader reloaded later with more samples
        self._pad: Optional[int] = None  # the padding of token rows padded to each batch's longest ...
        self._pad_read = False  # ... read once, on the first batch of either split
        self._node_rows = False  # the training batch is one graph's nodes (an edge_index, no graph per sample)
        self._train_labelled, self._val_columns = True, None  # a first training target; leave-one-out inputs

    # ------------------------------------------------------------------------------------------------ hooks

    @override
    def setup(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        if stage == "fit":
            self._reset()
            if trainer.world_size > 1:
                self._stop("under DDP each rank sees one shard of each split; fingerprints are not gathered")

    @override
    def on_train_batch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._reason is None and not self._train_done:
            self._take(batch, "train")
        elif self._late.active and trainer.current_epoch == self._late.epoch:
            x, _ = split_batch(batch, self.get_input)
            if isinstance(x, torch.Tensor) and x.dim() > 0:
                self._late.add(self._same_width(x))

    @override
    def on_train_epoch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._judged and self._val_fp is not None and not self._has_finding(trainer):
            self._late.start(trainer)

    @override
    def on_validation_batch_start(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._reason is None and not self._val_done:
            self._take(batch, "val", windows=not trainer.sanity_checking)
            if not trainer.sanity_checking and self._val:
                self._val_batches += 1
                self._val_last = self._val[-1]

    @override
    def on_validation_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._reason is not None or self._val_done or trainer.sanity_checking:
            return
        self._val_fp, self._val = self._read(self._val), []
        self._val_done = True
        self.retire("on_validation_batch_start")
        self._judge(trainer)

    @override
    def on_train_epoch_end(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if self._late.active and trainer.current_epoch == self._late.epoch:
            self._judge_late(trainer)
        if self._reason is not None or self._train_done:
            return
        self._train_fp = self._train.hashes()
        self._train.clear()
        self._train_done = True
        self._late.batches = trainer.num_training_batches
        if not self._late.watching(trainer):
            self.retire("on_train_batch_end")
        self._judge(trainer)

    @override
    def conclude(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule") -> None:
        if not self.is_enabled("split-overlap"):
            return
        if self._reason is None and not self._judged:
            # A run that ended early: judge what was seen, if both splits were seen at all.
            if self._train_fp is None and self._train:
                self._train_fp = self._train.hashes()
            if self._val_fp is None and self._val:
                self._val_fp = self._read(self._val)
            self._judge(trainer, partial=True)
        if self._reason is not None and not self._judged:
            self.skip(trainer, "split-overlap", self._reason)

    # ------------------------------------------------------------------------------------------------ fingerprints

    def _stop(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
        self._train.clear()
        self._val = []
        self._windows.clear()
        self._tokens.clear()
        self._reversed.clear()
        self._near.clear()
        self._patches.clear()
        self.retire("on_train_batch_end", "on_validation_batch_start")

    def _take(self, batch: Any, split: str, windows: bool = True) -> None:
        try:
            x, y = split_batch(batch, self.get_input)
            if x is None and self.get_input is None:  # a dict whose keys name no input: all its ids together
                x = joined_inputs(batch)
            if not isinstance(x, torch.Tensor) or x.dim() == 0:
                self._stop(f"could not find the input tensor of a {split} batch; pass `get_input=`")
                return
            graph = graph_batch_parts(batch)
            adjacency = dense_adjacency(batch, x) if graph is None else None  # dense graphs: in any node order
            if graph is not None and x.shape[0] == graph[1].shape[0]:
                # Many small graphs: the sample is a graph, its nodes and edges, not a node row.
                x, windows = graph_rows(S.fingerprints(x), *graph), False
            elif adjacency is not None:
                x, windows, graph = dense_graph_rows(x, adjacency), False, adjacency
            elif split == "train" and not self._train_batches:
                self._node_rows = edge_index_of(batch) is not None
            if y is None and S.bare_keys(x):
                self._stop(S.KEYS_ONLY)
                return
            count = self._train_count if split == "train" else self._val_count
            if count >= _MAX_SAMPLES:
                return
            self._pairs.add(split, y, int(x.shape[0]))
            rows = x if graph is not None else self._same_width(x)  # what is fingerprinted as the samples
            if split == "train":
                if not self._train_batches:
                    self._measurements, self._train_labelled = S.measured_values(x), y is not None
                self._train_batches += 1
                self._train.add(rows)
                self._train_count += int(x.shape[0])
            else:
                if not self._val_count:
                    self._val_columns = label_hits(x, y)
                self._val.append(S.fingerprints(rows))
                self._val_count += int(x.shape[0])
            if windows and self._measurements:
                self._windows.add(x, split)
            if windows and not self._tokens.off:
                self._tokens.add(x, split)
            if windows and not self._reversed.off:
                self._reversed.add(x, split)
            if windows and not self._near.off:
                self._near.add(x, split)
            if windows and not self._patches.off:
                self._patches.add(x, split)
        except Exception as err:  # a check must never lose the user's run
            log.debug("split-overlap fingerprint failed", exc_info=True)
            self._stop(f"could not fingerprint a {split} batch: {err!r}")

    def _same_width(self, x: torch.Tensor) -> torch.Tensor:
        # Token rows padded to each batch's longest: one width for all, or a sample's fingerprint would depend on
        # the batch it came in (a collate's dynamic padding, a bucket sampler).
        if not self._pad_read:
            self._pad, self._pad_read = S.right_padding(x), True
        return S.padded(x, self._pad) if self._pad is not None and x.dim() == 2 else x

    @staticmethod
    def _read(store: list[torch.Tensor]) -> Optional[torch.Tensor]:
        return torch.cat(store).cpu() if store else None  # the one host transfer of this epoch

    def _judge(self, trainer: "pl.Trainer", partial: bool = False) -> None:
        if self._judged or not self.is_enabled("split-overlap"):
            return
        if self._val_fp is None or self._train_fp is None:
            if partial:
                self._reason = self._reason or ("no validation data was seen" if self._val_fp is None
                                                else "no training batch was seen")
            return
        if not (self._train_done and self._val_done) and not partial:
            return
        self._judged = True
        train_fp, samples = self._train_fp[:, 0], int(self._train_fp.shape[0])
        if S.same_single_batch(self._train_batches, self._val_batches, train_fp, self._val_last):
            self.skip(trainer, "split-overlap", S.TRANSDUCTIVE)
            return
        if self._node_rows and S.holds_training_graph(self._train_batches, self._val_batches, train_fp, self._val_fp):
            self.skip(trainer, "split-overlap", S.INDUCTIVE)
            return
        found, distinct, repeated = S.overlap(self._val_fp, train_fp)
        share = self._late.baseline = found / max(distinct, 1)
        # Repeats within training excuse shared samples, unless they are copies (multiplicities of oversampling
        # before the split, or measured values, which independent draws never repeat) and distinct inputs are too
        # far apart to coincide by chance.
        copies = repeated > 0 and (self._measurements or S.copied_multiplicities(train_fp))
        chance = min(repeated, S.coincidence_share(self._train_fp, samples)) if copies else repeated
        excess = share - chance
        if excess >= self.threshold("split-overlap", "share") and not self._train_labelled and held_out(
                self._val_columns):
            self.skip(trainer, "split-overlap", S.LEAVE_ONE_OUT)
            return
        seen = f"{distinct} distinct validation samples, {samples} training samples"
        text = (f"{found} of {distinct} validation samples in training ({share:.0%}); training repeats "
                f"{repeated:.0%} of its own samples, of which coincidences explain at most {chance:.0%}")
        threshold = self.threshold("split-overlap", "share")
        unit = "samples"
        if (excess < threshold or found < 2) and repeated >= threshold:
            # The inputs repeat (an id many samples share): the (input, target) pair is the sample's identity.
            train_y, val_y = self._pairs.read("train"), self._pairs.read("val")
            pairs = judge_pairs(train_fp, self._val_fp, train_y, val_y)
            if pairs is not None:
                found, distinct, repeated = pairs
                share = found / max(distinct, 1)
                # Pairs met by chance: validation targets drawn from the prior, whatever training holds (ids that
                # name other users in validation agree at that rate; copies agree every time).
                expected, sd = pair_chance(train_fp, train_y, self._val_fp, val_y)
                by_chance = min(1.0, (expected + CHANCE_SIGMAS * sd) / max(distinct, 1))
                chance, unit = max(repeated, by_chance), "(input, target) pairs"
                excess = share - chance
                seen = f"{distinct} distinct validation pairs, {samples} training pairs; the inputs alone repeat"
                text += (f"; as (input, target) pairs: {found} of {distinct} in training ({share:.0%}), training "
                         f"repeats {repeated:.0%} of its pairs, targets drawn from their prior would meet a training "
                         f"pair {expected / max(distinct, 1):.0%} of the time (at most {by_chance:.0%})")
        if excess < threshold or found < 2:
            # Dense targets (clean images, windows): copies of a record with fresh input noise share their target.
            targets = judge_targets(self._pairs.read_all("train"), self._pairs.read("val")) if self._pairs.dense else None
            text += f"; {targets['figures']}" if targets is not None else ""
            near, text = judge_near_copies(self, text)
            patches, text = judge_patches(self, text)
            report_windows(self, trainer, text, threshold)
            report_tokens(self, trainer, threshold)
            report_reversed(self, trainer, text, threshold)
            # The finer patterns name the cause (overlapping windows or patches, reversed pairs); exact copies of the
            # targets come next, near copies of the inputs are the rest.
            for report, result in ((report_patches, patches), (report_targets, targets), (report_near_copies, near)):
                if not self._has_finding(trainer):
                    report(self, trainer, text, result, threshold)
            return
        self._tokens.clear()
        self._reversed.clear()
        self._near.clear()
        self._patches.clear()
        self.detail(trainer, "split-overlap", text)
        severity = S.overlap_severity(excess, threshold)
        self.report(
            trainer, "split-overlap", severity,
            f"{found} of {distinct} validation {unit} ({share:.0%}) also appear in the training data ({seen}; "
            f"training repeats {repeated:.0%} of its own {unit}, of which coincidences of distinct observations "
            f"explain at most {chance:.0%}): validation measures memory, not generalisation, and the validation "
            "loss looks better than it is.",
            "Split once, then build both loaders from that one split (`random_split` with one seeded generator, "
            "`train_test_split` called once); do not split twice with different seeds, sample validation from the "
            "training set, or pass the training loader as the validation loader. Deduplicate the data set before "
            "splitting, and oversample (repeat minority samples) after the split, in the training split only."
            + (" For held-out interactions (leave-one-out), build the training pairs from what remains after the "
               "held-out ones are removed, not from the full history." if unit != "samples" else ""),
            where="validation data", at_step=False, key="overlap",
            data={"validation_in_training": found, "validation_samples": distinct, "share": share,
                  "training_samples": samples, "training_repeat_share": repeated, "coincidence_share": chance,
                  "unit": unit,
                  "partial": partial},
        )

    def _has_finding(self, trainer: "pl.Trainer") -> bool:
        return any(f.check == "split-overlap" for f in self.collector(trainer).findings)

    def _judge_late(self, trainer: "pl.Trainer") -> None:
        counts = self._late.judge(self._val_fp)
        self.retire("on_train_batch_end")
        if counts is None or not self.is_enabled("split-overlap"):
            return
        found, distinct = counts
        share, threshold = found / max(distinct, 1), self.threshold("split-overlap", "share")
        if share - self._late.baseline < threshold or found < 2:
            return
        self.report(
            trainer, "split-overlap", S.overlap_severity(share - self._late.baseline, threshold),
            f"From epoch {self._late.epoch} on, the reloaded training data holds {found} of {distinct} validation "
            f"samples ({share:.0%}; {self._late.baseline:.0%} in the first epoch): validation samples joined the "
            "training set, and the validation loss (and anything it drives: checkpoints, early stopping, a plateau "
            "scheduler) measures memory from then on.",
            "Keep the validation samples out of every training set the DataModule returns. To train on all labelled "
            "data at the end, do it in a final run without validation (fixed epochs chosen on the split run), and "
            "report a held-out test set instead.",
            where="validation data", at_step=False, key="late_training",
            data={"epoch": self._late.epoch, "validation_in_training": found, "validation_samples": distinct,
                  "share": share, "first_epoch_share": self._late.baseline},
        )

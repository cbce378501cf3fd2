"""``split-overlap`` on dense targets: validation samples whose *target* (a clean image, a window to forecast) is a
copy of a training target, though their inputs differ.

A denoiser's data made as noisy copies of each clean image *before* the split (the zoo's
``bug_digits_denoiser_noisy_copies_split_after_replication``) gives every validation input fresh noise, so no input
fingerprint matches and the copies' noise hides near copies too; the clean targets, though, are the very records
training learns to output. When the loss target is a dense float signal (at least :data:`MIN_VALUES` values per
sample, some of them off the integer grid: not class labels, token ids or masks), its fingerprints (already taken,
aligned with the inputs', by :class:`~lightning_sanity.callbacks._split_pairs.PairPrints`) are judged like the
inputs': the share of distinct validation targets found in training beyond the training targets' own repetition,
with copied multiplicities (the only sign of copies here) and the coincidence bound of :mod:`lightning_sanity.checks.splits`. A target space of a
few templates (a model that outputs one of 10 class prototypes) repeats by design: the coincidence bound of a few
distinct targets excuses everything, and fewer than :data:`MIN_DISTINCT` distinct validation targets are not judged.

Example::

    >>> import torch
    >>> dense_target(torch.rand(4, 1, 8, 8)), dense_target(torch.randint(0, 2, (4, 1, 8, 8)).float())
    (True, False)
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.checks import splits as S

#: values per sample that make a target a signal (class scores and small regression heads have fewer).
MIN_VALUES = 16
#: share of a target batch's values off the integer grid that makes it real-valued (masks, one-hot codes: none).
MIN_OFF_GRID = 0.1
#: distinct validation targets needed (a handful of templates is a vocabulary, not records), and found ones.
MIN_DISTINCT, MIN_FOUND = 50, 10


def dense_target(y: Any) -> bool:
    """Whether target batch ``y`` is a dense float signal: floating point, at least :data:`MIN_VALUES` values per
    sample, at least :data:`MIN_OFF_GRID` of its sampled values off the integer grid (one host read)."""
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.dim() < 2 or not y.shape[0]:
        return False
    if y[0].numel() < MIN_VALUES:
        return False
    return S.off_grid_share(S.sample_rows(y[:64])) >= MIN_OFF_GRID


def judge_targets(train: Optional[torch.Tensor], val: Optional[torch.Tensor]) -> Optional[dict[str, Any]]:
    """The targets' overlap: ``train`` ``(N, 3)`` split fingerprints of the training targets, ``val`` ``(M,)``
    fingerprints of the validation ones. None when there is too little to judge.

    Unlike inputs, measured target values do not make repeats copies: a target may be a template that i.i.d.
    samples share (a class's prototype, a simulation's setting); only multiplicities that stop dead do."""
    if train is None or val is None or train.dim() != 2 or not train.shape[0]:
        return None
    samples = int(train.shape[0])
    found, distinct, repeated = S.overlap(val, train[:, 0])
    if distinct < MIN_DISTINCT:
        return None
    share = found / distinct
    copies = repeated > 0 and S.copied_multiplicities(train[:, 0])
    chance = min(repeated, S.coincidence_share(train, samples)) if copies else repeated
    distinct_train = int(torch.unique(train[:, 0]).numel())
    return {"found": found, "distinct": distinct, "share": share, "repeated": repeated, "chance": chance,
            "excess": share - chance, "samples": samples, "distinct_train": distinct_train,
            "figures": (f"as targets: {found} of {distinct} distinct validation targets in training ({share:.0%}); "
                        f"training repeats {repeated:.0%} of its {samples} targets ({distinct_train} distinct), "
                        f"of which coincidences explain at most {chance:.0%}")}


def report_targets(callback: Any, trainer: Any, text: str, result: Optional[dict[str, Any]],
                   threshold: float) -> None:
    """A finding when the validation targets found in training exceed chance by ``threshold`` (and number
    :data:`MIN_FOUND`)."""
    if result is None or result["excess"] < threshold or result["found"] < MIN_FOUND:
        return
    callback.detail(trainer, "split-overlap", text)
    severity = S.overlap_severity(result["excess"], threshold)
    callback.report(
        trainer, "split-overlap", severity,
        f"The targets of validation samples also appear in the training data, though their inputs differ: "
        f"{result['figures']}. Copies of each record (noisy or augmented inputs with the same clean target) were "
        "made before the split, so validation asks the model to reproduce targets it was trained on: it measures "
        "memory of the records, not generalisation, and the validation loss looks better than it is.",
        "Split the original records first (one split per clean image, series or recording), then make the noisy or "
        "augmented copies within each split.",
        where="validation data", at_step=False, key="targets",
        data={"validation_targets_in_training": result["found"], "validation_targets": result["distinct"],
              "share": result["share"], "training_targets": result["samples"],
              "distinct_training_targets": result["distinct_train"],
              "training_repeat_share": result["repeated"], "coincidence_share": result["chance"]},
    )

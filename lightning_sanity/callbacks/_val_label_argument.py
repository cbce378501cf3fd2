"""``target-leakage`` for teacher forcing kept in validation: ``validation_step`` hands the model a label that
training scored one of its heads against (a hierarchical classifier's fine head fed the gold group), so the
validation scores are read with part of the answer given.

After the first training step, :func:`record_label_heads` keeps the batch keys of the per-sample class labels the
step's recognised losses compared with, and each head's width. At the first batch of each validation run after
that, until found (:class:`~lightning_sanity.callbacks._graph_links.GraphLinkHooks`: a model learns to read the
label as it trains), a one-shot forward pre-hook on the LightningModule looks at its first call. When it is handed
one of those labels (the batch's own tensor), the call is run twice more, under ``no_grad`` in an isolated RNG,
with the label as given and with the labels moved one sample on. Class scores (an output of a head's width) that
fit that head's labels better with the gold argument read the answer. A model given labels only for a loss it
computes inside (HF ``labels=``) keeps its scores, and a margin head handed the label (ArcFace) fits worse with it:
both are silent. Cost: two forwards of one batch per validation run, only while a label is handed to the model and
not yet found.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F

from lightning_sanity.batch import batch_items
from lightning_sanity.callbacks._model_call import on_first_call, storage_of
from lightning_sanity.replays.rng import isolate_rng, seed_global

ADVICE = ("Hand the model its own predictions in validation (`group=None`, the coarse head's argmax), as at "
          "inference: teacher forcing with the gold label belongs to training only.")


def record_label_heads(callback: Any, batch: Any) -> None:
    """Keep ``(batch key, head width)`` of the class labels the first step's recognised losses scored against."""
    heads = []
    for target, width in getattr(callback._losses, "classes", []):
        for key, part in batch_items(batch):
            if isinstance(part, torch.Tensor) and part.dim() == 1 and not part.is_floating_point() \
                    and part.numel() == target.numel() and storage_of(part) == storage_of(target):
                heads.append((key, width))
    callback._val_labels = heads or None


def watch_val_label_argument(callback: Any, trainer: Any, pl_module: Any, batch: Any) -> None:
    """Register the one-shot look at the module's first call in this validation batch."""
    heads = callback._val_labels
    labels = [(k, v, w) for k, w in heads for key, v in batch_items(batch) if key == k and isinstance(v, torch.Tensor)]
    if not labels:
        return

    def look(args: tuple, kwargs: dict) -> None:
        given = next(((k, v) for k, v, _ in labels if any(v is a for a in (*args, *kwargs.values()))), None)
        if given is not None and "target-leakage" not in callback._found:
            _look(callback, trainer, pl_module, args, kwargs, given, labels)

    on_first_call(pl_module, batch, look, callback._handles)


def _scores(output: Any, size: int) -> list[torch.Tensor]:
    items = output.values() if isinstance(output, Mapping) else output if isinstance(output, (list, tuple)) \
        else [output]
    return [t for t in items if isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() == 2
            and t.shape[0] == size]


#: Nats by which the gold labels must lower a head's cross-entropy against its own labels, beyond the moved ones.
GAIN = 0.01


def _look(callback: Any, trainer: Any, module: Any, args: tuple, kwargs: dict, given: tuple,
          labels: list[tuple[Any, torch.Tensor, int]]) -> None:
    key, label = given
    size = int(label.shape[0])
    if size < 2 or int(torch.unique(label).numel()) < 2:
        return
    moved = label.roll(1, 0)
    swap = (lambda a: moved if a is label else a)
    with torch.no_grad(), isolate_rng():
        seed_global(0)
        base = _scores(module(*args, **kwargs), size)
        seed_global(0)
        other = _scores(module(*map(swap, args), **{k: swap(v) for k, v in kwargs.items()}), size)
    # A head reads its answer when the gold labels lower its loss against its own labels: a margin head handed the
    # label (ArcFace) raises it instead, a loss computed inside leaves the scores alone.
    gains = [float(F.cross_entropy(b, y.to(b.device)) - F.cross_entropy(a, y.to(a.device)))
             for a, b in zip(base, other) if a.shape == b.shape
             for _, y, width in labels if int(a.shape[1]) == width and y.shape[0] == size and int(y.max()) < width]
    callback._ran["target-leakage"].append(f"the validation call is handed batch[{key!r}], a training label, and "
                                           "its class scores do not read it")
    if not gains or max(gains) <= GAIN:
        return
    callback._found.add("target-leakage")
    callback._val_labels = None
    callback.report(
        trainer, "target-leakage", "error",
        f"In validation the model is handed batch[{key!r}], the label a head is scored against in training, and its "
        f"class scores fit their labels better with it than with the labels of other samples (cross-entropy lower by "
        f"{max(gains):.3g}): teacher forcing is kept in validation, so the validation scores are read with part of "
        "the answer given, and the deployed model, which has no gold label, does worse.",
        ADVICE, where=f"batch[{key!r}]", key="val-label-argument", at_step=False,
        data={"label": str(key), "gain": max(gains), "samples": size},
    )

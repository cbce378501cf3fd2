"""``target-leakage`` glue for validation inputs that hold their own labels.

Node classification with the label trick (UniMP-style label reuse) whose label input keeps the validation nodes'
labels: in validation the model is given a one-hot of the labels of the very nodes it is scored on (key
``val-label-input``). And a sparse validation input whose label's column is on in every row
(:mod:`lightning_sanity.checks.label_in_input`: a leave-one-out recommender validated on the full history, the
held-out item switched on; key ``label-in-input``), when training's batches carry no such label or rarely hold it.

Set up by :class:`~lightning_sanity.callbacks._graph_links.GraphLinkHooks` on the first validation batch of a fit: a
one-shot forward pre-hook on the LightningModule reads its first call's arguments. An argument that is a tensor of
the batch, ``(N, C)`` with every row either zero or the one-hot of the batch's integer label ``(N,)``, is a label
input; the validation nodes are named by the batch (a key holding ``val``: an index tensor or a boolean mask). When
every validation node's row holds its own label, the model reads its answers. A label input built from the
training labels only (the validation rows zero) is the label trick done right. Cost: one comparison, once.

Example::

    >>> import torch
    >>> y = torch.arange(24) % 3
    >>> labels = torch.nn.functional.one_hot(y, 3).float()
    >>> val = torch.arange(16, 24)
    >>> labels_of(labels, y, val), labels_of(labels * (torch.arange(24) < 16)[:, None], y, val)
    (True, False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

import torch

from lightning_sanity.batch import split_batch
from lightning_sanity.callbacks._model_call import on_first_call
from lightning_sanity.checks.label_in_input import label_hits, reads_label

#: Validation nodes needed: a one-hot row equal to its node's label by chance is one class in C.
MIN_NODES = 8
ADVICE = ("Build the label input from the training labels only (zero the rows of the validation and test nodes), "
          "and in training hide the labels of the nodes each step predicts.")


def labels_of(part: torch.Tensor, y: torch.Tensor, nodes: torch.Tensor) -> bool:
    """Whether ``part`` (``(N, C)``) is a label input (each row zero or the one-hot of ``y``) holding the labels of
    every node in ``nodes`` (indices)."""
    if part.dim() != 2 or y.dim() != 1 or part.shape[0] != y.shape[0] or int(y.max()) >= part.shape[1] \
            or nodes.numel() < MIN_NODES or int(y.min()) < 0:
        return False
    one_hot = torch.nn.functional.one_hot(y.long(), int(part.shape[1])).to(part.dtype)
    rows = (part == one_hot).all(1) | (part == 0).all(1)
    return bool(rows.all()) and bool((part[nodes] == one_hot[nodes]).all())


def _validation_nodes(batch: Mapping, n: int) -> Optional[tuple[str, torch.Tensor]]:
    for key, value in batch.items():
        if "val" not in str(key).lower() or not isinstance(value, torch.Tensor) or value.dim() != 1:
            continue
        if value.dtype == torch.bool and value.shape[0] == n:
            return str(key), value.nonzero().flatten()
        if not value.is_floating_point() and value.numel() and int(value.max()) < n and int(value.min()) >= 0:
            return str(key), value.long()
    return None


def watch_val_label_input(callback: Any, trainer: Any, pl_module: Any, batch: Any) -> None:
    """Register the one-shot look at the module's first validation call (dict batches with a validation key)."""
    if not isinstance(batch, Mapping) or not any("val" in str(k).lower() for k in batch):
        return

    def look(args: tuple, kwargs: dict) -> None:
        if (trainer.validating or trainer.sanity_checking) and "target-leakage" not in callback._found:
            _look(callback, trainer, batch, [*args, *kwargs.values()])

    on_first_call(pl_module, batch, look, callback._handles)


def _look(callback: Any, trainer: Any, batch: Mapping, given: list) -> None:
    items = [(k, v) for k, v in batch.items() if isinstance(v, torch.Tensor)]
    labels = [(k, v) for k, v in items if v.dim() == 1 and not v.is_floating_point() and v.dtype != torch.bool]
    for arg in given:
        key = next((k for k, v in items if v is arg), None)
        if key is None or arg.dim() != 2 or not arg.is_floating_point():
            continue
        found = _validation_nodes(batch, int(arg.shape[0]))
        for label_key, y in labels:
            if found is None or y.shape[0] != arg.shape[0] or not labels_of(arg, y, found[1].to(arg.device)):
                continue
            val_key, nodes = found
            callback._found.add("target-leakage")
            callback.report(
                trainer, "target-leakage", "error",
                f"In validation the model is given batch[{key!r}], which holds the one-hot of batch[{label_key!r}] "
                f"for all {nodes.numel()} validation nodes (batch[{val_key!r}]): each node it is scored on reads its "
                "own label through its self-loop and its neighbours' messages (a label trick whose label input "
                "hides only the test nodes), so validation measures nothing.",
                ADVICE, where=f"batch[{key!r}]", key="val-label-input", at_step=False,
                data={"label_input": str(key), "label": str(label_key), "validation": val_key,
                      "nodes": int(nodes.numel())},
            )
            return


def note_training_columns(callback: Any, x: Any, y: Any) -> None:
    """The first training batch's :func:`label_hits`, for :func:`judge_val_columns` (kept with this fit's
    ``_ran``: a fresh dict per fit)."""
    callback._train_columns = (callback._ran, label_hits(x, y))


def read_val_columns(callback: Any, trainer: Any, batch: Any) -> None:
    """The first validation batch's :func:`label_hits`, judged at once when training has run, else at the first
    validation batch after training began (the sanity check comes before any training batch)."""
    x, y = split_batch(batch, callback.get_input, callback.get_target)
    found = label_hits(x, y)
    callback._val_columns = (callback._ran, found) if reads_label(found) else None
    if callback._val_columns is not None and not trainer.sanity_checking:
        judge_val_columns(callback, trainer)


def judge_val_columns(callback: Any, trainer: Any) -> None:
    ran, found = callback._val_columns or (None, None)
    callback._val_columns = None
    if ran is not callback._ran or "target-leakage" in callback._found or callback._first:
        return
    train_ran, train = getattr(callback, "_train_columns", (None, None))
    train = train if train_ran is callback._ran else None
    if train is not None and train[0] >= train[1] / 2:  # training's inputs hold their labels too: a candidate set
        return
    hits, rows, density = found
    callback._found.add("target-leakage")
    seen = ("training's batches carry no such label" if train is None
            else f"in training {train[0]} of {train[1]} rows do")
    callback.report(
        trainer, "target-leakage", "error",
        f"Every validation input holds its own answer: in all {rows} rows of the first validation batch the input's "
        f"column at the label's index is non-zero, in an input where {density:.1%} of the entries are (chance would "
        f"put the label there for about {density:.0%} of the rows; {seen}). A leave-one-out validation set built from "
        "the full history switches the held-out item on in the very vector the model reads, so validation scores a "
        "copy of the answer.",
        "Build each validation input from what training saw (the history without the held-out item), exactly as the "
        "training inputs are built, and keep the held-out item only as the target.",
        where="validation inputs", key="label-in-input", at_step=False,
        data={"rows": rows, "density": density, "training_hits": None if train is None else train[0]},
    )

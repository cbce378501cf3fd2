"""``target-leakage`` glue for tabular inputs: a feature column that gives the label away (equal to it, its one-hot,
an affine or monotone function of a regression target: :func:`lightning_sanity.checks.leakage.label_columns`).
Every ``(N, F)`` part of the batch but the label is scanned, integer-coded categories included (``(x_cat, x_num,
y)`` batches); the label is what the first step's loss compares with
(:mod:`~lightning_sanity.callbacks._step_targets`). Without such parts, the positions of a float input of more
dimensions (image pixels, a window's time steps) are scanned the same way for a class label: a legend swatch burned
into the corner of every image. Called by :class:`~lightning_sanity.callbacks.leakage.LeakageChecks`.
"""

from __future__ import annotations

from typing import Any

import torch

from lightning_sanity.batch import batch_items
from lightning_sanity.callbacks._class_fill import check_class_fill
from lightning_sanity.callbacks._label_blocks import LabelBlocks
from lightning_sanity.checks import leakage as L
from lightning_sanity.checks.label_pairs import pair_columns
from lightning_sanity.checks.label_tuple import class_tuple

_WORDS = {"equal": "take one value per class (the label itself, up to a relabelling)",
          "one-hot": "are a one-hot encoding of the label",
          "marker": "hold one value on every sample of one class and on no other sample",
          "one-hot group": ("are the one-hot levels of a category that decides the label (each level is held by "
                            "samples of one class only, and every sample holds one: a field written after the "
                            "outcome, such as a discharge code or a closing status)"),
          "affine": "are the regression target up to scale and offset",
          "monotone": "rise (or fall) with the regression target on every pair of distinct rows",
          "tuple": ("are each constant within every class and together different between every two classes, while "
                    "the rest of the input varies within a class (a code of the label spread over positions)")}
ADVICE = ("Drop the label and every column computed from it (its encoding, its bins or quantile, a per-class "
          "statistic) from the features before building the dataset; select feature columns by name, not by "
          "position or dtype.")


def column_names(batch: Any, parts: list[torch.Tensor]) -> list[str]:
    """A name per column of ``parts`` concatenated: ``input column j`` for one part that is the batch's input,
    else ``batch[i] column j`` (``batch['key'] column j`` for a dict batch; a metadata part beside a signal)."""
    items = batch_items(batch)
    if len(parts) == 1 and (not items or items[0][1] is parts[0] or batch is parts[0]):
        return [f"input column {j}" for j in range(parts[0].shape[1])]
    names = []
    for p in parts:
        key = next((k for k, v in items if v is p), None)
        where = f"batch[{key!r}]" if isinstance(key, str) else f"batch[{key}]" if key is not None else "input"
        names += [f"{where} column {j}" for j in range(p.shape[1])]
    return names


#: Values scanned at most in the first batch's positions (samples x positions): one sort of the distinct rows.
POSITION_VALUES = 1 << 22


def check_label_columns(callback: Any, trainer: Any, parts: list[torch.Tensor], y: torch.Tensor, batch: Any,
                        x: Any = None) -> None:
    """Report the columns of ``parts`` (the batch's ``(N, F)`` inputs) that give the label ``y`` away; without
    parts, the positions of ``x`` (a float input of 3 or more dimensions) that give a class label away."""
    if not parts:
        check_label_positions(callback, trainer, x, y)
        return
    x = torch.cat([p.detach().float().cpu() for p in parts], 1) if len(parts) > 1 else parts[0]
    columns, how = L.label_columns(x, y)
    callback._ran["target-leakage"].append(f"no feature column gives the label away ({x.shape[1]} columns)")
    if not columns:
        check_class_fill(callback, trainer, x, y, column_names(batch, parts))
        check_label_pairs(callback, trainer, x, y, column_names(batch, parts))
        return
    names = column_names(batch, parts)
    if how == "blocks":  # a strong honest feature splits one batch too: followed over the first epoch
        callback._blocks = LabelBlocks.start(batch, parts, columns, names, y)
        return
    callback._found.add("target-leakage")
    # An exact linear target (or a strictly monotone one) is also what a noiseless synthetic regression looks like:
    # a warning. A step function of the target (fewer levels than distinct targets: its bins) is an error.
    step = how == "monotone" and int(torch.unique(x[:, columns[0]]).numel()) < int(torch.unique(y).numel())
    shown = columns[:10] if names[0] == "input column 0" else ", ".join(names[c] for c in columns[:10])
    marked = _marked(x[:, columns[0]], y) if how == "marker" else None
    callback.report(
        trainer, "target-leakage", "error" if how in ("equal", "one-hot") or step else "warning",
        f"Input column(s) {shown} of the first training batch {_WORDS[how]} on all {x.shape[0]} samples"
        + (" (a step function of it: its bins, as kept for a stratified split)" if step else "")
        + (f" ({names[columns[0]]} is {marked[1]:g} exactly on the samples of class {marked[0]}: a field filled in "
           "only after the outcome, such as a downtime or a cancellation date left at 0 otherwise)" if marked else "")
        + ": the label is among the model's features, so it learns to copy it and fails on data without it.",
        ADVICE, where=names[columns[0]], key="columns",
        data={"columns": columns[:50], "names": [names[c] for c in columns[:50]], "how": how,
              "samples": int(x.shape[0]), **({"marker": {"class": marked[0], "value": marked[1]}} if marked else {})},
    )


def _marked(col: torch.Tensor, y: torch.Tensor) -> Any:
    """``(class, value)`` of a marker column: the class whose samples all hold the value, held by no other."""
    labels = y.detach().reshape(-1).cpu()
    col = col.detach().float().cpu()
    for c in torch.unique(labels).tolist():
        rows = labels == c
        v = col[rows][0]
        if bool((col[rows] == v).all()) and bool((rows == (col == v)).all()):
            return int(c), float(v)
    return None


def check_label_positions(callback: Any, trainer: Any, x: Any, y: torch.Tensor) -> None:
    """Report the positions of ``x`` (``(N, C, H, W)`` pixels, ``(N, T, C)`` steps) holding one value per class.

    Class labels with the "one value per class" pattern; and one step of a window (``(N, T, C)``) that is exactly
    affine in a regression target while no other is: the target's column kept in the record the sequence was built
    from. A pixel affine in a regression target is what a synthetic brightness regression is, and every step of a
    window scaled by its target (an amplitude) is affine in it. Chance is bounded as for columns
    (:func:`~lightning_sanity.checks.leakage.chance_column`), over every position scanned.
    """
    y = y[:, 0] if isinstance(y, torch.Tensor) and y.dim() == 2 and y.shape[1] == 1 else y
    regression = isinstance(y, torch.Tensor) and y.is_floating_point() and bool((y != y.round()).any())
    if (not isinstance(x, torch.Tensor) or x.dim() < 3 or not x.is_floating_point() or y.dim() != 1
            or x.shape[0] != y.shape[0] or (regression and x.dim() != 3)
            or (y.is_floating_point() and not regression)):
        return
    positions = x[0].numel()
    rows = min(int(x.shape[0]), POSITION_VALUES // max(positions, 1))
    if rows < 16:
        return
    flat = x[:rows].detach().flatten(1)
    # Binary inputs are left out: a one-hot sequence whose class is its token at one place is a synthetic task, as
    # for integer tokens (callbacks/_step_targets.py).
    if bool(((flat == 0) | (flat == 1)).all()):
        return
    columns, how = L.label_columns(flat, y[:rows], equal_only=not regression)
    callback._ran["target-leakage"].append(f"no input position holds one value per class ({positions} positions)")
    if regression and how == "affine" and len(columns) == 1:
        report_target_step(callback, trainer, x, columns[0], rows)
        return
    if not regression and how != "equal":  # no one position: several that spell the class together
        columns, how = class_tuple(flat, y[:rows]) or [], "tuple"
    if how not in ("equal", "tuple") or not columns:
        return
    callback._found.add("target-leakage")
    shape = tuple(x.shape[1:])
    where = [tuple(int(i) for i in torch.unravel_index(torch.tensor(c), shape)) for c in columns[:50]]
    shown = ", ".join(str(w) for w in where[:5]) + (f" and {len(columns) - 5} more" if len(columns) > 5 else "")
    callback.report(
        trainer, "target-leakage", "error",
        f"{len(columns)} input position(s) of the first training batch ({shown}, indexing each sample's "
        f"{'x'.join(map(str, shape))} input) {_WORDS[how]} on all {rows} samples: a mark that encodes the label is "
        "in the inputs (a legend swatch or class-coloured border burned in by an export tool, a marker channel, "
        "coordinate channels added before a jigsaw's tiles were shuffled), so the model learns to read it and fails "
        "on inputs without it.",
        "Remove the mark from the inputs (export the images without annotations, crop or mask the region) and "
        "check that no preprocessing step writes the label, or anything computed from it, into the input.",
        where=f"input position {where[0]}", key="positions",
        data={"positions": [list(w) for w in where], "how": how, "samples": rows},
    )


def check_label_pairs(callback: Any, trainer: Any, x: torch.Tensor, y: torch.Tensor, names: list[str]) -> None:
    """Report two columns that give a regression target exactly together (:mod:`lightning_sanity.checks.label_pairs`)."""
    y = y.detach().flatten() if y.dim() == 2 and y.shape[1] == 1 else y.detach()
    if not y.is_floating_point() or bool((y == y.round()).all()):
        return  # class labels and counts: their columns are judged one at a time
    found = pair_columns(x, y)
    if found is None:
        return
    i, j, rest = found
    callback._found.add("target-leakage")
    callback.report(
        trainer, "target-leakage", "warning",
        f"{names[i]} and {names[j]} of the first training batch give the regression target exactly: it is "
        f"a * ({names[i]}) + b * ({names[j]}) + c on all {int(x.shape[0])} samples (1 - R^2 = {rest:.1e}), while "
        "neither column follows from the other inputs that way. One of them is computed from the target: a change "
        "taken towards the next value (np.diff(y, append=...) gives y[t + 1] - y[t] at t), a total beside one of "
        "its parts, a residual of the label.",
        "Recompute the derived feature from values known before the target (a change as y[t] - y[t - 1], "
        "np.diff(y, prepend=y[0])), and check every engineered column for a reference to the label.",
        where=names[i], key="columns",
        data={"columns": [i, j], "names": [names[i], names[j]], "how": "pair", "unexplained": rest,
              "samples": int(x.shape[0])},
    )


def report_target_step(callback: Any, trainer: Any, x: torch.Tensor, column: int, rows: int) -> None:
    """Report the one step of a window that is the regression target up to scale and offset."""
    callback._found.add("target-leakage")
    step, channel = divmod(column, int(x.shape[2]))
    callback.report(
        trainer, "target-leakage", "warning",
        f"Step {step} (channel {channel}) of each {x.shape[1]}x{x.shape[2]} input sequence of the first training batch "
        f"is the regression target up to scale and offset on all {rows} samples, and no other step is: the "
        "target's own column was kept in the record the sequence was built from (features and target stacked "
        "for scaling or splitting), so the model reads the answer.",
        "Build the sequences from the feature columns only: drop the target's column before stacking or "
        "scaling, and keep its scaler apart.",
        where=f"input position ({step}, {channel})", key="positions",
        data={"positions": [[step, channel]], "how": "affine", "samples": rows},
    )

"""Another input of the batch that holds the label: pure functions on the first training batch for
``target-leakage``; the glue is :mod:`lightning_sanity.callbacks._label_copies`.

A collate that fills an extra input field from the label field (``pos_ids`` built from ``ex["ner_tags"]``, a
"domain id" that is the class) hands the model the answer through an input the model reads. The test: a tensor of the
batch other than the input and the target, of the target's shape (or the target's shape plus a trailing feature
dimension, each feature tested), that on every supervised position (``ignore_index`` left out) takes one value per
class and a different value for each class: the labels themselves or a relabelling of them (tags offset by a
constant). Such an exact match is evidence only beyond chance: shuffling the labels of the ``d`` rows (supervised
positions of distinct samples) among themselves, one unrelated column's value groups equal the classes with
probability at most ``c! prod(d_c!) / d!`` (:func:`lightning_sanity.checks.leakage.chance_column`), times the number of
columns scanned; that must stay below :data:`CHANCE`. A value that is one function of the input at the same position
(a part-of-speech tag from a deterministic tagger, a word-shape feature) tells the model nothing its input token does
not, and is not reported, even when it happens to determine the label.

A per-token feature vector (``(B, T, F)``) is also tested whole, on the positions its input token does not explain
(``how="unexplained"``): a gazetteer built from every tagged word of the annotated corpus flags each word with the
types it was tagged with, so a known ambiguous word (a name that is also a common word) carries the same flags
wherever it stands, while at the out-of-vocabulary tokens (one input id, many words) the flags spell out each token's
own label. Where one input token of the batch carries two feature values or more, the vector must take one value per
class and a different value for each class, beyond the same chance bound (:func:`unexplained_copy`). An honest
feature does not: an external gazetteer misses some names (partial coverage), capitalisation and word shape are the
same for all entity types, part-of-speech tags too, character ids differ from word to word.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> ids = torch.randint(2, 60, (16, 12), generator=g)
    >>> tags = torch.randint(0, 3, (16, 12), generator=g)
    >>> tags[:, 0] = -100                                   # [CLS]: not supervised
    >>> copy = torch.where(tags >= 0, tags + 1, 0)           # the tags offset by one, 0 at [CLS]
    >>> [(c.name, c.how) for c in label_copies(tags, {"pos_ids": copy, "attention_mask": torch.ones_like(ids)}, ids)]
    [('pos_ids', 'relabelled')]
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch

from lightning_sanity.checks.leakage import IGNORED, chance_column
from lightning_sanity.checks.target_inputs import MAX_ROWS, determined, groups

#: A tensor is reported when some column among all scanned would match the shuffled labels this well by chance with
#: probability below this (a permutation test's level, as for the label column of :mod:`.leakage`).
CHANCE = 1e-3
#: Values of a sample compared when telling distinct samples apart: two samples equal on this many leading values
#: are taken for one (which only removes evidence, never adds it).
SAMPLE_VALUES = 4096


@dataclasses.dataclass
class LabelCopy:
    """A batch tensor (``name``; ``column`` of its trailing feature dimension, or None) that holds the label."""

    name: str
    column: Optional[int]
    #: ``"equal"`` (the labels themselves), ``"relabelled"`` (one distinct value per class), or ``"unexplained"``
    #: (the whole feature vector, one distinct value per class where the input token does not fix it).
    how: str
    #: supervised positions of distinct samples compared, and the classes among them.
    rows: int
    classes: int
    #: ``log10`` of the chance bound.
    log10_chance: float
    #: for a window of a longer sequence (:func:`candidate_columns`): its first and last position along axis 1
    span: Optional[tuple[int, int]] = None


#: Offsets of a longer sequence tried as windows of the target's length (a decoder input of context + horizon).
MAX_OFFSETS = 256


def candidate_columns(y: torch.Tensor, value: torch.Tensor) -> Optional[torch.Tensor]:
    """``value`` as ``(*y.shape, F)`` columns when it has the target's shape (one column) or the target's shape plus a
    trailing feature dimension, else None. A sequence longer than the target along axis 1 gives a column for each
    window of the target's length (each offset, each feature): a decoder input built as ``cat([context, y])``, whose
    placeholder for the horizon holds the horizon itself.

    >>> import torch
    >>> y = torch.zeros(4, 6, dtype=torch.long)
    >>> candidate_columns(y, torch.zeros(4, 6)).shape, candidate_columns(y, torch.zeros(4, 6, 3)).shape
    (torch.Size([4, 6, 1]), torch.Size([4, 6, 3]))
    >>> candidate_columns(y, torch.zeros(4, 9, 2)).shape   # 4 offsets x 2 features
    torch.Size([4, 6, 8])
    >>> candidate_columns(y, torch.zeros(5, 7)) is None
    True
    """
    if not isinstance(value, torch.Tensor) or value.is_complex() or value.dim() == 0:
        return None
    if value.shape == y.shape:
        return value.unsqueeze(-1)
    if value.dim() == y.dim() + 1 and value.shape[:-1] == y.shape and value.shape[-1] >= 1:
        return value
    if (y.dim() >= 2 and value.dim() in (y.dim(), y.dim() + 1) and value.shape[0] == y.shape[0]
            and y.shape[1] < value.shape[1] <= y.shape[1] + MAX_OFFSETS - 1
            and value.shape[2:y.dim()] == y.shape[2:]):
        v = value if value.dim() == y.dim() + 1 else value.unsqueeze(-1)  # (B, L, *rest, F)
        windows = v.unfold(1, y.shape[1], 1)  # (B, offsets, *rest, F, T)
        return windows.movedim(-1, 1).movedim(2, -1).flatten(-2)  # (B, T, *rest, F * offsets)
    return None


def window_span(y: torch.Tensor, value: torch.Tensor, column: int) -> tuple[Optional[int], Optional[tuple[int, int]]]:
    """The feature (None when ``value`` has one) and, for a window of a longer sequence, the ``(first, last)``
    positions along axis 1 behind ``column`` of :func:`candidate_columns`.

    >>> window_span(torch.zeros(4, 6), torch.zeros(4, 9, 2), 5), window_span(torch.zeros(4, 6), torch.zeros(4, 9), 3)
    ((1, (1, 6)), (None, (3, 8)))
    """
    several = value.dim() == y.dim() + 1 and value.shape[-1] > 1
    if value.dim() < 2 or y.dim() < 2 or value.shape[1] <= y.shape[1]:
        return (column if several else None), None
    offsets = value.shape[1] - y.shape[1] + 1
    start = column % offsets
    return (column // offsets if several else None), (start, start + y.shape[1] - 1)


def label_copies(y: torch.Tensor, candidates: dict[str, torch.Tensor], x: Optional[torch.Tensor] = None
                 ) -> list[LabelCopy]:
    """Tensors among ``candidates`` (name to tensor, each of ``y``'s shape or with one trailing feature dimension)
    that hold the class labels ``y`` (``(B,)`` or ``(B, T, ...)``; negative integers are ignored positions) beyond
    chance: ``[LabelCopy]``, strongest evidence first. ``x``, the model's main input, tells distinct samples apart
    and, when its leading dimensions are ``y``'s, explains values that are a function of the input at their position.
    """
    if not isinstance(y, torch.Tensor) or y.dim() == 0 or y.shape[0] < 2 or y.is_complex():
        return []
    labels = y.detach().cpu()
    if labels.is_floating_point() and not bool(torch.isfinite(labels).all() and (labels == labels.round()).all()):
        from lightning_sanity.checks.value_copies import value_copies

        return value_copies(y, candidates, x)  # a regression target: no classes, only equal values count
    columns = {name: c for name, v in candidates.items() if (c := candidate_columns(y, v)) is not None}
    if not columns:
        return []
    columns = {name: c.detach().cpu() for name, c in columns.items()}
    keep = _distinct_samples(labels, columns, x)
    labels = labels[keep].long()
    used = labels >= IGNORED
    if not bool(used.any()):
        return []
    target = labels[used][:MAX_ROWS]
    classes, index, per_class = torch.unique(target, return_inverse=True, return_counts=True)
    tests = sum(c.shape[-1] for c in columns.values())
    bound = chance_column(per_class.tolist(), tests)
    if classes.numel() < 2 or bound >= CHANCE:
        return []
    log10 = math.log10(max(bound, 1e-300)) if bound > 0 else -300.0
    inputs = _same_position_inputs(x, y, keep, used)
    found = []
    for name, c in columns.items():
        values = c[keep][used][:MAX_ROWS].double()  # (n, F)
        if not bool(torch.isfinite(values).all()):
            continue
        for j in _bijective(values, index, classes.numel()):
            v = values[:, j]
            if inputs is not None and determined(inputs, v)[0]:
                continue  # a function of the token at the same position: nothing the input does not say
            how = "equal" if bool((v == target.double()).all()) else "relabelled"
            feature, span = window_span(y, candidates[name], j)
            found.append(LabelCopy(name, feature, how, int(target.numel()), int(classes.numel()), log10, span))
    if inputs is None or y.dim() < 2:
        return found
    for name, c in columns.items():  # each per-token vector whole, where its token does not fix it
        if not any(f.name == name for f in found):
            copy = unexplained_copy(c[keep][used][:MAX_ROWS].double(), target, inputs, len(columns) + tests)
            found += [dataclasses.replace(copy, name=name)] if copy is not None else []
    return found


def unexplained_copy(values: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor, tests: int = 1
                     ) -> Optional[LabelCopy]:
    """A :class:`LabelCopy` (``how="unexplained"``, no name) when ``values`` (``(n, F)``, one vector per supervised
    position) take one value per class of ``target`` (``(n,)``) and a different value for each class on the
    positions whose input token (``inputs``, ``(n, k)``) carries two values or more in the batch, beyond chance over
    ``tests`` scans; else None. A token whose every occurrence carries one value may be its function: left out.

    >>> import torch
    >>> ids = torch.tensor([1, 1, 1, 1, 1, 1, 1, 1, 1, 7, 7, 7])[:, None].repeat(4, 1)
    >>> tags = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0]).repeat(4)
    >>> flags = torch.nn.functional.one_hot(tags, 3)[:, 1:].double()
    >>> flags[ids[:, 0] == 7] = 1.0          # a known word, flagged wherever it stands: its token explains it
    >>> copy = unexplained_copy(flags, tags, ids)
    >>> copy.how, copy.rows, copy.classes, copy.log10_chance < -10
    ('unexplained', 36, 3, True)
    >>> unexplained_copy(torch.ones(48, 1).double(), tags, ids) is None    # a constant: no class told apart
    True
    """
    if values.numel() == 0 or not bool(torch.isfinite(values).all()):
        return None
    value, token = groups(values), groups(inputs)
    width = int(token.max()) + 1
    low = torch.full((width,), value.numel(), dtype=torch.long).scatter_reduce(0, token, value, "amin")
    high = torch.full((width,), -1, dtype=torch.long).scatter_reduce(0, token, value, "amax")
    free = (high != low)[token]
    if int(free.sum()) < 2:
        return None
    classes, index, per_class = torch.unique(target[free], return_inverse=True, return_counts=True)
    bound = chance_column(per_class.tolist(), tests)
    if classes.numel() < 2 or bound >= CHANCE or not _bijective(value[free].double()[:, None], index, classes.numel()):
        return None
    log10 = math.log10(bound) if bound > 0 else -300.0
    return LabelCopy("", None, "unexplained", int(free.sum()), int(classes.numel()), log10)


def _bijective(values: torch.Tensor, index: torch.Tensor, classes: int) -> list[int]:
    """Columns of ``values`` (``(n, F)`` float64) holding one value per class and a different value for each."""
    rows = index[:, None].expand_as(values)
    low = torch.full((classes, values.shape[1]), math.inf, dtype=values.dtype).scatter_reduce(0, rows, values, "amin")
    high = torch.full((classes, values.shape[1]), -math.inf, dtype=values.dtype).scatter_reduce(0, rows, values, "amax")
    ordered = low.sort(0).values
    ok = (low == high).all(0) & (ordered[1:] != ordered[:-1]).all(0)
    return torch.nonzero(ok).flatten().tolist()


def _distinct_samples(labels: torch.Tensor, columns: dict[str, torch.Tensor], x: Optional[torch.Tensor]
                      ) -> torch.Tensor:
    """Indices of the first sample of each group of identical samples (input, target and candidates alike): a batch
    holding one sample twice (a sampler with per-class weights) shows every relation twice, which proves nothing."""
    size = labels.shape[0]
    parts = [labels.reshape(size, -1).double()]
    parts += [c.reshape(size, -1)[:, :SAMPLE_VALUES].double() for c in columns.values()]
    if isinstance(x, torch.Tensor) and x.dim() >= 1 and x.shape[0] == size and not x.is_complex():
        parts.append(x.detach().cpu().reshape(size, -1)[:, :SAMPLE_VALUES].double())
    rows = torch.nan_to_num(torch.cat(parts, 1), nan=math.pi)
    _, inverse = torch.unique(rows, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), size, dtype=torch.long).scatter_reduce(
        0, inverse, torch.arange(size), "amin")
    return first.sort().values


def _same_position_inputs(x: Optional[torch.Tensor], y: torch.Tensor, keep: torch.Tensor, used: torch.Tensor
                          ) -> Optional[torch.Tensor]:
    """The main input at each supervised position, ``(n, k)``, when its leading dimensions are the target's."""
    if not isinstance(x, torch.Tensor) or x.dim() < y.dim() or x.shape[: y.dim()] != y.shape or x.is_complex():
        return None
    at = x.detach().cpu()[keep].reshape(*used.shape, -1)[used][:MAX_ROWS]
    return at if at.shape[1] <= 64 else None

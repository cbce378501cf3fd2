"""Split overlap: per-sample fingerprints of the exact input bits, and how many validation samples training holds.

Pure functions on tensors; the callback :class:`lightning_sanity.callbacks.split_overlap.SplitOverlap` feeds them
the batches as they pass.

Example::

    >>> import torch
    >>> train, val = torch.randn(10, 4), torch.randn(3, 4)
    >>> overlap(fingerprints(torch.cat([val[:1], val[1:]])), fingerprints(torch.cat([train, val[:2]])))
    (2, 3, 0.0)
    >>> coincidence_share(split_fingerprints(torch.randn(100, 8)), training_samples=100) < 0.1  # copies only
    True
"""

from __future__ import annotations

import math
from typing import Optional

import torch

#: Values of a sample hashed at most: beyond, this many evenly spaced ones (distinct real samples differ there).
#: Hashing costs about 30 ns a value on one CPU core: 1024 values keep a 64-image batch of 3x32x32 near 2 ms.
FINGERPRINT_VALUES = 1024
_BITS = {torch.float64: torch.int64, torch.float32: torch.int32, torch.float16: torch.int16,
         torch.bfloat16: torch.int16}
_WEIGHTS: dict[tuple[int, int, str], torch.Tensor] = {}
_COLUMNS: dict[tuple[int, torch.device], torch.Tensor] = {}


def right_padding(x: torch.Tensor) -> Optional[int]:
    """The padding value of integer ``(B, T)`` rows padded on the right to their batch's longest (a collate's dynamic
    padding, ``pad_sequence``): a value that ends some row in a run of two or more while another row ends otherwise,
    and that no row holds anywhere but in such a final run. ``None`` for anything else (token rows of one fixed
    length need no care, and a token that merely repeats at the end of a row is no padding).

    >>> import torch
    >>> right_padding(torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0], [9, 0, 0, 0]])), right_padding(torch.ones(3, 4))
    (0, None)
    >>> right_padding(torch.tensor([[5, 6, 7, 8], [5, 6, 0, 0], [0, 3, 1, 2]]))  # 0 is a token here
    """
    if x.dim() != 2 or x.is_floating_point() or x.dtype == torch.bool or x.shape[1] < 3:
        return None
    last, before = x[:, -1], x[:, -2]
    runs = last[last == before]
    if runs.numel() == 0:
        return None
    pad = int(runs.mode().values)
    held = x == pad
    suffix = bool((held[:, 1:] >= held[:, :-1]).all())  # once padding, padding to the end of the row
    return pad if suffix and bool((last != pad).any()) else None


def padded(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Rows of ``x`` (``(B, T)``) padded on the right with ``pad`` (or cut) to :data:`FINGERPRINT_VALUES` values: a
    sample gets one fingerprint whatever the longest row of the batch it came in."""
    width = x.shape[1]
    if width >= FINGERPRINT_VALUES:
        return x[:, :FINGERPRINT_VALUES]
    return torch.nn.functional.pad(x, (0, FINGERPRINT_VALUES - width), value=pad)


def fingerprints(x: torch.Tensor) -> torch.Tensor:
    """One int64 hash per sample of ``x`` (``(B, ...)``), computed on ``x``'s device from the exact bits of its
    values: equal samples get equal fingerprints, distinct ones collide with probability about 2^-60.

    >>> import torch
    >>> x = torch.tensor([[0.5, 1.0], [0.5, 1.0], [0.5, 1.5]])
    >>> f = fingerprints(x)
    >>> bool(f[0] == f[1]), bool(f[0] == f[2])
    (True, False)
    """
    return hash_rows(sample_rows(x), halves=False)


def split_fingerprints(x: torch.Tensor) -> torch.Tensor:
    """``(B, 3)`` int64 hashes per sample of ``x``: of all its (hashed) values, of a fixed random half of them,
    and of the other half. Two distinct samples that agree on a whole half are near-duplicates: how often that
    happens says whether exact duplicates can be coincidences (see :func:`coincidence_share`).

    >>> import torch
    >>> f = split_fingerprints(torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]]))
    >>> tuple(f.shape), bool((f[0] == f[1]).all())
    ((2, 3), True)
    """
    return hash_rows(sample_rows(x), halves=True)


def sample_rows(x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(B, F)``: each sample of ``x`` flattened, at most :data:`FINGERPRINT_VALUES` evenly spaced values of it, in
    a fixed random order (a copy): the first ``F // 2`` columns are the fixed random half that :func:`hash_rows`
    hashes apart.

    What :func:`hash_rows` hashes; rows of several batches of the same width may be concatenated and hashed at once
    (the same hashes as batch by batch, for fewer and larger kernels): ``out`` (contiguous, ``(B, F)``, the dtype of
    ``x``) receives the rows in place, a slice of a block being gathered.
    """
    # Only an input that requires grad needs detaching, and a table no reshape: each is an operator call a step.
    rows = x.detach() if x.requires_grad else x
    rows = rows if rows.dim() == 2 else rows.reshape(rows.shape[0], -1)
    key = (int(rows.shape[1]), rows.device)
    index = _COLUMNS.get(key)
    if index is None:
        width = key[0]
        picked = (torch.linspace(0, width - 1, FINGERPRINT_VALUES).long() if width > FINGERPRINT_VALUES
                  else torch.arange(width))
        # The random half is put first here, in the copy that is made anyway: hashing it apart is then a sum over
        # a contiguous slice instead of a gather of half the values.
        order = torch.randperm(picked.numel(), generator=torch.Generator().manual_seed(0x5EED))
        index = _COLUMNS[key] = picked[order].to(rows.device)
    return rows.index_select(1, index) if out is None else torch.index_select(rows, 1, index, out=out)


def hash_rows(rows: torch.Tensor, halves: bool = True, scratch: bool = False) -> torch.Tensor:
    """The hashes of :func:`sample_rows`: ``(B, 3)`` (all values, the first half of the columns, the rest) or
    ``(B,)`` (all values). With ``scratch``, ``rows`` (contiguous) may be overwritten."""
    if rows.is_floating_point():
        # +0.0 for -0.0, so that the sign of a zero does not make two samples differ.
        fixed = rows.add_(0.0) if scratch and rows.is_contiguous() else (rows + 0.0).contiguous()
        bits = fixed.view(_BITS.get(rows.dtype, torch.int32))
        # Mix high bits into low ones (float bit patterns differ mostly in the high bits), at the float's own width:
        # an arithmetic shift commutes with sign extension, so this equals mixing after widening to int64.
        mixed = bits >> 13
        mixed ^= bits
        products = mixed.long()
    else:
        products = rows.long()
        products = products ^ (products >> 13)
    weights = hash_weights(products.shape[1], products.device)
    # Elementwise, not an integer matrix product: integer matmul is unvectorised on the CPU (twice slower).
    # int64 arithmetic wraps around: a hash modulo 2^64, the same in any order of summation.
    products *= weights
    if not halves:
        return products.sum(dim=1)
    half = products.shape[1] // 2
    one, other = products[:, :half].sum(dim=1), products[:, half:].sum(dim=1)
    return torch.stack([one + other, one, other], 1)


def hash_weights(n: int, device: torch.device, seed: int = 0x5EED) -> torch.Tensor:
    """``n`` odd int64 multipliers (invertible modulo 2^64) drawn from ``seed``, made once per device: the weights
    of the suite's hashes (rows here, runs of time steps in :mod:`.window_overlap`)."""
    key = (n, seed, str(device))
    weights = _WEIGHTS.get(key)
    if weights is None:
        g = torch.Generator().manual_seed(seed)
        weights = _WEIGHTS[key] = (torch.randint(-(2 ** 62), 2 ** 62, (n,), generator=g) * 2 + 1).to(device)
    return weights


def overlap(val: torch.Tensor, train: torch.Tensor) -> tuple[int, int, float]:
    """``(validation samples found in training, distinct validation samples, share of training samples that
    repeat within training)`` from fingerprints.

    >>> import torch
    >>> overlap(torch.tensor([1, 2, 3, 4]), torch.tensor([3, 4, 5, 5, 6]))
    (2, 4, 0.4)
    """
    val = torch.unique(val)
    train_unique, counts = torch.unique(train, return_counts=True)
    repeated = float(counts[counts > 1].sum()) / max(train.numel(), 1)
    found = int(torch.isin(val, train_unique).sum())
    return found, int(val.numel()), repeated


def coincidence_share(train: torch.Tensor, training_samples: int) -> float:
    """Upper bound on the share of fresh validation samples that equal some training sample by coincidence (two
    distinct real observations with the same input), from ``(N, 3)`` :func:`split_fingerprints` of training.

    Two independent draws agree on all values with probability at most that of agreeing on a half of them, and
    the latter is measured on the *distinct* training inputs (exact copies are what is under test, so they are
    left out): the rate ``c`` of distinct pairs that agree on a half (the larger of the two halves' rates, with
    an upper bound of ``k + 2 sqrt(k) + 3`` for ``k`` such pairs). A fresh sample then meets one of the
    ``training_samples`` by chance with probability at most ``training_samples * c``. Coarse data (a few
    categorical columns) gives a bound near 1: its duplicates may be coincidences. Continuous or high-resolution
    inputs (images, measurements, long token sequences) give a bound near 0: their duplicates are copies.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> coarse = torch.randint(0, 3, (600, 3), generator=g).float()
    >>> coincidence_share(split_fingerprints(coarse), 600)
    1.0
    """
    distinct = torch.unique(train, dim=0) if train.dim() == 2 else None
    if distinct is None or distinct.shape[0] < 2 or distinct.shape[1] < 3:
        return 1.0
    # Distinct inputs, one row each: rows that differ only in a half's hash are distinct samples.
    _, first = torch.unique(distinct[:, 0], return_inverse=True)
    rows = distinct[torch.unique(first)] if first.numel() != distinct.shape[0] else distinct
    n = rows.shape[0]
    pairs_total = n * (n - 1) / 2
    rate = 0.0
    for column in (1, 2):
        _, counts = torch.unique(rows[:, column], return_counts=True)
        k = float((counts * (counts - 1) // 2).sum())
        rate = max(rate, (k + 2 * math.sqrt(k) + 3) / pairs_total)
    return min(1.0, training_samples * rate)


#: share of validation samples found in training, beyond what chance explains, that is an error (a warning from the
#: check's ``share`` threshold up).
ERROR_SHARE = 0.5


def overlap_severity(excess: float, threshold: float) -> str:
    """``"error"`` for an overlap of at least :data:`ERROR_SHARE` (and the ``threshold``), else ``"warning"``: the
    one scale of every ``split-overlap`` pattern.

    >>> overlap_severity(0.8, 0.1), overlap_severity(0.3, 0.1), overlap_severity(0.6, 0.7)
    ('error', 'warning', 'warning')
    """
    return "error" if excess >= max(ERROR_SHARE, threshold) else "warning"


def measured_values(x: torch.Tensor) -> bool:
    """Whether batch ``x`` holds measured values: floating point, with most of its (sampled) values off the integer
    grid. Two independent observations of measured values never agree exactly: a repeat is a copy of a record (a
    bootstrap, oversampling, a table concatenated twice). Token ids, counts, pixel levels and one-hot codes sit on
    the grid, and draws from a small space of them repeat by themselves.

    >>> import torch
    >>> measured_values(torch.randn(8, 4)), measured_values(torch.randint(0, 9, (8, 4)).float())
    (True, False)
    """
    if not x.is_floating_point() or x.dim() == 0 or x.numel() == 0:
        return False
    return off_grid_share(sample_rows(x[:64])) > 0.5


def off_grid_share(values: torch.Tensor) -> float:
    """The share of the finite ``values`` off the integer grid (0 when none is finite): one host read.

    >>> off_grid_share(torch.tensor([0.5, 1.0, 2.0, float("nan")]))
    0.3333333432674408
    """
    values = values.float()
    values = values[torch.isfinite(values)]
    return float((values != values.round()).float().mean()) if values.numel() else 0.0


#: Independent draws would show the multiplicity ceiling that :func:`copied_multiplicities` tests with probability
#: below exp(-CEILING_EXPECTED) (about 1/1000).
CEILING_EXPECTED = math.log(1000)


def copied_multiplicities(train: torch.Tensor) -> bool:
    """Whether the multiplicities of the training inputs (fingerprints, one per sample) show a ceiling that
    independent draws from any distribution cannot produce: the signature of copies (each minority sample repeated
    exactly k times), not of a small input space.

    With independent draws, the number of distinct inputs seen exactly k times, ``N_k``, follows a mixture of
    Poisson laws, whose ratios ``(k + 1) N_{k+1} / N_k`` (the mean rate of an input seen k times, as Good and
    Turing estimate it) never decrease with k. So if the most repeated inputs are seen K times, about
    ``N_{K+1} >= K N_K^2 / ((K + 1) N_{K-1})`` inputs should have been seen K + 1 times; none were, which has
    probability ``exp(-that)`` at most. Coarse or low-entropy data (few categorical columns, sequences from a
    handful of rules) repeats its inputs smoothly and passes; oversampling by k copies stops dead at k.

    >>> import torch
    >>> unique = torch.arange(700)
    >>> copies = torch.arange(1000, 1100).repeat_interleave(4)  # 100 samples repeated four times
    >>> draws = torch.randint(0, 150, (1500,), generator=torch.Generator().manual_seed(0))  # chance repeats
    >>> copied_multiplicities(torch.cat([unique, copies])), copied_multiplicities(draws)
    (True, False)
    """
    _, counts = torch.unique(train, return_counts=True)
    top = int(counts.max()) if counts.numel() else 0
    if top < 2:
        return False
    at_top, below = int((counts == top).sum()), int((counts == top - 1).sum())
    expected = top * at_top ** 2 / ((top + 1) * max(below, 1))
    return expected >= CEILING_EXPECTED


#: Why a split that gives training and validation the same single batch is not judged.
TRANSDUCTIVE = ("training and validation got the same single batch, in the same order (full-batch, transductive "
                "training: node classification on one graph, split by masks of which nodes the loss counts): the split "
                "is in the masks, not in the samples, so fingerprints of the inputs cannot judge it")


def same_single_batch(train_batches: int, val_batches: int, train: torch.Tensor, val_last: Optional[torch.Tensor]) -> bool:
    """Whether training (one batch per epoch) and validation (one batch per run) got the very same batch: the same
    samples in the same order. A transductive split (a graph's nodes, split by loss masks) looks like this, and so
    does an unshuffled training loader passed as the validation loader when the data fits one batch: the two are the
    same bits, so the check cannot tell them apart and says so. A training loader that shuffles reorders its one
    batch, and a graph's nodes cannot be reordered without their edges: that case is still judged.

    >>> import torch
    >>> fp = torch.tensor([5, 7, 9])
    >>> same_single_batch(1, 1, fp, fp.clone()), same_single_batch(1, 1, fp, fp.flip(0)), same_single_batch(3, 1, fp, fp)
    (True, False, False)
    """
    if train_batches != 1 or val_batches != 1 or val_last is None:
        return False
    val_last = val_last.to(train.device)
    return val_last.shape == train.shape and bool(torch.equal(val_last, train))


#: Why a leave-one-out validation of unlabelled training rows is not judged.
LEAVE_ONE_OUT = ("training's batches carry no target and every validation input lacks its own target's column (a "
                 "leave-one-out evaluation: the user's history without the held-out item, asked for that item): "
                 "validation asks a new question of the training rows by design, so shared inputs are the protocol "
                 "and fingerprints of the inputs cannot judge the split")


#: Why one graph per split, the validation graph holding the training graph, is not judged.
INDUCTIVE = ("training and validation each got one graph, and the validation graph holds every node of the training "
             "graph: the training nodes are the context that message passing reads around the validation nodes "
             "(inductive node classification), the split is in which nodes the loss counts, and fingerprints of the "
             "inputs cannot judge it")


def holds_training_graph(train_batches: int, val_batches: int, train: torch.Tensor,
                         val: Optional[torch.Tensor]) -> bool:
    """Whether the one validation batch holds every sample of the one training batch, and more: the validation graph
    of inductive node classification, the training nodes with the new ones attached.

    >>> import torch
    >>> train = torch.tensor([5, 7, 9])
    >>> holds_training_graph(1, 1, train, torch.tensor([5, 7, 9, 4])), holds_training_graph(1, 1, train, train)
    (True, False)
    """
    if train_batches != 1 or val_batches != 1 or val is None or val.shape[0] <= train.shape[0]:
        return False
    return bool(torch.isin(train, val.to(train.device)).all())


#: Why batches of bare ids (one integer per sample, no target) are not judged.
KEYS_ONLY = ("the batches hold one integer id per sample and no target (a user, node or row index into data the "
             "model or dataset holds): the same id on both sides says nothing without what each split looks up for "
             "it, as when validation scores held-out interactions of the training users")


def bare_keys(x: torch.Tensor) -> bool:
    """Whether input ``x`` is one integer per sample (``(B,)`` or ``(B, 1)``): keys into data held elsewhere, not
    observations.

    >>> import torch
    >>> bare_keys(torch.arange(4)), bare_keys(torch.arange(4).view(4, 1)), bare_keys(torch.zeros(4, 3, dtype=torch.long))
    (True, True, False)
    >>> bare_keys(torch.rand(4))
    False
    """
    return (not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool
            and (x.dim() == 1 or (x.dim() == 2 and x.shape[1] == 1)))

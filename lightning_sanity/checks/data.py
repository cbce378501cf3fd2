"""The math of the ``input-scale`` and ``label-distribution`` checks: pure functions on tensors.

Inputs are summarised per feature (every non-batch element is one feature: a pixel position, a column, a time step
of a channel) over the first few batches; labels are counted per batch.

Example::

    >>> import torch
    >>> stats = InputStats()
    >>> stats.add(torch.tensor([[0.0, 255.0], [128.0, 255.0]]))
    >>> round(stats.rms, 1), stats.constant_features
    (191.3, 1)
    >>> imbalance_ratio(torch.tensor([90, 10, 0]))
    9.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

import torch

from lightning_sanity.checks.heavy_tail import squashed_counts

#: Per-sample features beyond this many are not summarised one by one (only the global figures are kept).
MAX_FEATURES = 1 << 20

#: Rules of thumb for "far from unit scale". Standardised, [0, 1] or [-1, 1] inputs have an RMS near or below 1;
#: raw 8-bit pixels have an RMS around 100 and unstandardised measurements (prices, counts, coordinates) feature
#: standard deviations in the hundreds. Past these, the first layer's pre-activations are tens of times larger
#: than its initialisation assumes (He/Glorot assume unit-variance inputs), which saturates or explodes them.
LARGE_RMS = 20.0
LARGE_FEATURE_RMS = 100.0
#: Inputs whose largest magnitude is below this were most likely scaled twice (x / 255 / 255 peaks at 0.004).
SMALL_MAX = 1e-2


class InputStats:
    """Running per-feature sums over batches of one input field (non-finite values counted, then left out)."""

    def __init__(self) -> None:
        self.samples = 0
        self.batches = 0
        self.values = 0
        self.nonfinite = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.abs_max = 0.0
        self.sum: Optional[torch.Tensor] = None
        self.sumsq: Optional[torch.Tensor] = None
        self.min: Optional[torch.Tensor] = None
        self.max: Optional[torch.Tensor] = None
        #: per feature, positive values and those squashed below 1/100 of the batch's std (checks/heavy_tail.py)
        self.positives: Optional[torch.Tensor] = None
        self.squashed: Optional[torch.Tensor] = None
        #: batches of two or more samples whose samples were all identical
        self.identical_batches = 0
        self.multi_sample_batches = 0

    def add(self, x: torch.Tensor) -> None:
        """Take in one batch (first dimension = samples), on any device; the result is kept on the CPU."""
        self.add_summary(summarise_batch(x), x.shape[0] if x.dim() else 1)

    def add_summary(self, summary: dict[str, torch.Tensor], samples: int) -> None:
        """Take in one batch's :func:`summarise_batch` (already on the CPU)."""
        self.samples += samples
        self.batches += 1
        self.nonfinite += int(summary["nonfinite"])
        self.values += int(summary["values"])
        self.total += float(summary["total"])
        self.total_sq += float(summary["total_sq"])
        self.abs_max = max(self.abs_max, float(summary["abs_max"]))
        if samples >= 2:
            self.multi_sample_batches += 1
            if bool(summary["identical"]):
                self.identical_batches += 1
        if "sum" not in summary:
            return
        if self.sum is None or self.sum.shape != summary["sum"].shape:
            if self.sum is not None:  # features change shape between batches (variable length): stop per feature
                self.sum = self.sumsq = self.min = self.max = self.positives = self.squashed = None
                return
            for key in _FEATURE_KEYS:
                setattr(self, key, summary[key].clone())
            return
        self.sum += summary["sum"]
        self.sumsq += summary["sumsq"]
        self.positives += summary["positives"]
        self.squashed += summary["squashed"]
        self.min = torch.minimum(self.min, summary["min"])
        self.max = torch.maximum(self.max, summary["max"])

    @property
    def finite_values(self) -> int:
        return self.values - self.nonfinite

    @property
    def rms(self) -> float:
        """Root mean square of every finite value."""
        return math.sqrt(self.total_sq / self.finite_values) if self.finite_values else 0.0

    @property
    def mean(self) -> float:
        return self.total / self.finite_values if self.finite_values else 0.0

    @property
    def std(self) -> float:
        return math.sqrt(max(self.rms ** 2 - self.mean ** 2, 0.0))

    @property
    def max_feature_rms(self) -> Optional[float]:
        """The largest per-feature root mean square, or None when features were not kept."""
        if self.sumsq is None or self.samples == 0:
            return None
        return float((self.sumsq / self.samples).sqrt().max())

    @property
    def max_feature_std(self) -> Optional[float]:
        if self.sum is None or self.samples == 0:
            return None
        mean = self.sum / self.samples
        return float((self.sumsq / self.samples - mean * mean).clamp_min(0).sqrt().max())

    @property
    def features(self) -> Optional[int]:
        return None if self.sum is None else int(self.sum.numel())

    @property
    def constant_features(self) -> Optional[int]:
        """How many features took a single value over every sample seen (None when not kept)."""
        if self.min is None or self.samples < 2:
            return None
        return int((self.min == self.max).sum())


def summarise_batch(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-feature sums, squares, minima, maxima, positive and squashed counts (:mod:`.heavy_tail`) of one batch,
    plus global figures, as float64 CPU tensors.

    All results are packed into one tensor before leaving the device, so one batch costs one device-to-host copy.
    """
    x = x.detach()
    flat = x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(-1, 1)
    flat = flat.to(torch.float32) if flat.dtype in (torch.float16, torch.bfloat16) or not flat.is_floating_point() else flat
    if flat.numel() and flat.shape[1] <= MAX_FEATURES:
        lo, hi = torch.aminmax(flat, dim=0)
        if bool(torch.isfinite(torch.stack([lo.min(), hi.max()])).all()):  # NaN and Inf reach the extremes
            return _summarise_finite(flat, lo, hi)
    finite = torch.isfinite(flat)
    clean = torch.where(finite, flat, torch.zeros((), dtype=flat.dtype, device=flat.device))
    lo = torch.where(finite, flat, torch.full((), math.inf, dtype=flat.dtype, device=flat.device)).amin(0)
    hi = torch.where(finite, flat, torch.full((), -math.inf, dtype=flat.dtype, device=flat.device)).amax(0)
    per_feature = flat.shape[1] <= MAX_FEATURES
    zero = torch.zeros((), dtype=torch.float64, device=flat.device)
    clean64 = clean.double()
    head = torch.stack([
        (~finite).sum().double(),
        torch.full((), float(flat.numel()), dtype=torch.float64, device=flat.device),
        clean64.sum(),
        (clean64 * clean64).sum(),
        clean64.abs().amax() if clean.numel() else zero,
        ((hi - lo).abs().amax() == 0).double() if flat.shape[0] > 1 and flat.shape[1] > 0 else zero,
    ])
    parts = [head]
    if per_feature:
        sums, sumsq = clean64.sum(0), (clean64 * clean64).sum(0)
        parts += [sums, sumsq, lo.double(), hi.double(), *squashed_counts(clean, sums, sumsq)]
    return _unpack(torch.cat(parts).cpu(), flat.shape[1] if per_feature else 0)


#: The per-feature figures of :func:`summarise_batch`, in their packed order.
_FEATURE_KEYS = ("sum", "sumsq", "min", "max", "positives", "squashed")


def _unpack(packed: torch.Tensor, features: int) -> dict[str, torch.Tensor]:
    out = dict(zip(("nonfinite", "values", "total", "total_sq", "abs_max", "identical"), packed[:6]))
    if features:
        out.update({key: packed[6 + i * features:6 + (i + 1) * features] for i, key in enumerate(_FEATURE_KEYS)})
    return out


def _summarise_finite(flat: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> dict[str, torch.Tensor]:
    """:func:`summarise_batch` of a batch without NaN or Inf: no masks, and the global figures from the per-feature
    ones (a third of the passes over the batch)."""
    clean64 = flat.double()
    sums, sumsq = clean64.sum(0), (clean64 * clean64).sum(0)
    lo64, hi64 = lo.double(), hi.double()
    head = torch.stack([
        torch.zeros((), dtype=torch.float64, device=flat.device),
        torch.full((), float(flat.numel()), dtype=torch.float64, device=flat.device),
        sums.sum(), sumsq.sum(), torch.maximum(lo64.abs().amax(), hi64.abs().amax()),
        ((hi64 - lo64).abs().amax() == 0).double() if flat.shape[0] > 1 else torch.zeros_like(sums[0]),
    ])
    packed = torch.cat([head, sums, sumsq, lo64, hi64, *squashed_counts(flat, sums, sumsq)]).cpu()
    return _unpack(packed, flat.shape[1])


def scale_verdict(
    stats: InputStats,
    *,
    rms_large: float = LARGE_RMS,
    feature_rms_large: float = LARGE_FEATURE_RMS,
    max_small: float = SMALL_MAX,
) -> Optional[str]:
    """``"large"``, ``"small"`` or None for a field's scale (float inputs only; see the thresholds above).

    ``"large"``: an RMS above ``rms_large`` or one feature's RMS above ``feature_rms_large``; ``"small"``: a largest
    magnitude below ``max_small``.

    >>> stats = InputStats()
    >>> stats.add(torch.full((4, 2), 8.0))
    >>> scale_verdict(stats), scale_verdict(stats, rms_large=5.0)
    (None, 'large')
    """
    if stats.finite_values == 0:
        return None
    feature_rms = stats.max_feature_rms
    if stats.rms > rms_large or (feature_rms is not None and feature_rms > feature_rms_large):
        return "large"
    if 0 < stats.abs_max < max_small:
        return "small"
    return None


# --------------------------------------------------------------------------- labels


def label_counts(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Counts of each class index in ``[0, classes)`` (others ignored)."""
    labels = labels.reshape(-1).long()
    labels = labels[(labels >= 0) & (labels < classes)]
    return torch.bincount(labels, minlength=classes)[:classes]


def imbalance_ratio(counts: torch.Tensor) -> float:
    """Most frequent class count over least frequent, among the classes present (1.0 with fewer than two)."""
    present = counts[counts > 0].double()
    if present.numel() < 2:
        return 1.0
    return float(present.max() / present.min())


#: A class at least ten times rarer than the most frequent one, seen at least 20 times (so that sampling noise in a
#: few small batches cannot make a balanced set look skewed). One to ten is the practitioners' example of an
#: imbalance worth initialising the output bias for.
IMBALANCE_RATIO = 10.0
IMBALANCE_MIN_MAJORITY = 20


def heavy_imbalance(counts: torch.Tensor, ratio: float = IMBALANCE_RATIO) -> bool:
    """Most over least frequent class at least ``ratio``, with at least :data:`IMBALANCE_MIN_MAJORITY` samples of the
    most frequent one.

    >>> heavy_imbalance(torch.tensor([60, 10])), heavy_imbalance(torch.tensor([60, 10]), ratio=5.0)
    (False, True)
    """
    return imbalance_ratio(counts) >= ratio and int(counts.max()) >= IMBALANCE_MIN_MAJORITY


def shannon_balance(counts: torch.Tensor) -> float:
    """The labels' entropy over that of an even split of the classes present (Shannon equitability): 1 for even
    classes, towards 0 as one class takes them all. Most/least frequent alone is set by the rarest class; this is
    the whole prior's distance from the uniform start.

    >>> round(shannon_balance(torch.tensor([10, 1])), 3), shannon_balance(torch.tensor([5, 5, 0]))
    (0.439, 1.0)
    """
    present = counts[counts > 0].double()
    if present.numel() < 2:
        return 1.0
    p = present / present.sum()
    return float(-(p * p.log()).sum() / math.log(present.numel()))


def binary_balance(ratio: float) -> float:
    """:func:`shannon_balance` of a two-class split ``ratio`` to 1: the skew that :data:`IMBALANCE_RATIO` means."""
    return shannon_balance(torch.tensor([float(ratio), 1.0]))


def batch_label_association(per_batch: torch.Tensor) -> tuple[float, float, int]:
    """Cramér's V, the chi-square statistic and its degrees of freedom for a ``batches x classes`` count table.

    With shuffled data, which batch a sample lands in says nothing about its label: the chi-square statistic stays
    near its degrees of freedom and V near 0. Data sorted by label puts one or two classes in each batch: V near 1.
    """
    table = per_batch.double()
    table = table[:, table.sum(0) > 0]
    table = table[table.sum(1) > 0]
    r, c = table.shape if table.dim() == 2 else (0, 0)
    if r < 2 or c < 2:
        return 0.0, 0.0, 0
    n = table.sum()
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    v = math.sqrt(chi2 / (float(n) * (min(r, c) - 1)))
    return v, chi2, (r - 1) * (c - 1)


def looks_sorted(per_batch: torch.Tensor) -> bool:
    """Batches far more uniform in label than the pooled labels: sorted data that was not shuffled.

    Fires when every batch holds a single class while the batches together hold several, or when Cramér's V is
    at least 0.6 *and* the chi-square statistic is beyond three times its degrees of freedom and six of its
    standard deviations above them (tiny batches of many classes reach a high V by chance, never both).
    """
    table = per_batch[per_batch.sum(1) > 0]
    if table.shape[0] < 2 or int((table.sum(0) > 0).sum()) < 2:
        return False
    if bool(((table > 0).sum(1) == 1).all()) and int(table.sum(1).min()) >= 2:
        return True
    v, chi2, df = batch_label_association(table)
    return df > 0 and v >= 0.6 and chi2 > max(3 * df, df + 6 * math.sqrt(2 * df))


def log_prior_bias(counts: torch.Tensor) -> list[float]:
    """The softmax output bias that predicts the class frequencies (classes never seen get half a count)."""
    p = (counts.double() + (counts == 0).double() * 0.5)
    p = p / p.sum()
    return [round(float(v), 3) for v in p.log()]


def logit_bias(positive_rate: float) -> float:
    """The sigmoid output bias that predicts ``positive_rate``: log(p / (1 - p))."""
    p = min(max(positive_rate, 1e-6), 1 - 1e-6)
    return round(math.log(p / (1 - p)), 3)


def padding_token(batch: Any) -> Optional[int]:
    """The padding token of a HuggingFace-style dict batch: the one value of ``input_ids`` where ``attention_mask``
    is 0, or None (no such keys, no padding, or several values there).

    >>> padding_token({"input_ids": torch.tensor([[5, 6, 0, 0]]), "attention_mask": torch.tensor([[1, 1, 0, 0]])})
    0
    """
    if not isinstance(batch, Mapping):
        return None
    ids, mask = batch.get("input_ids"), batch.get("attention_mask")
    if not isinstance(ids, torch.Tensor) or not isinstance(mask, torch.Tensor) or ids.shape != mask.shape:
        return None
    padded = ids[mask == 0]
    if padded.numel() == 0:
        return None
    values = torch.unique(padded)
    return int(values[0]) if values.numel() == 1 else None


#: Integer dtypes that hold raw samples (8-bit pixels, 16-bit PCM audio or sensor counts), never token ids: a
#: vocabulary does not fit 8 bits and tokenizers return int64.
SIGNAL_DTYPES = (torch.uint8, torch.int8, torch.int16, getattr(torch, "uint16", torch.int16))
#: Fewest values per sample for raw samples (an image, a waveform), not a few categorical codes.
SIGNAL_MIN_VALUES = 16


def integer_signal(x: torch.Tensor) -> bool:
    """Whether integer tensor ``x`` holds raw samples whose scale reaches the model: an 8/16-bit dtype with at least
    :data:`SIGNAL_MIN_VALUES` values per sample.

    >>> integer_signal(torch.zeros(4, 1, 8000, dtype=torch.int16)), integer_signal(torch.zeros(4, 32, dtype=torch.long))
    (True, False)
    """
    return x.dtype in SIGNAL_DTYPES and x.dim() >= 2 and x[0].numel() >= SIGNAL_MIN_VALUES

"""Leakage: can the model read what it must predict? Pure functions on tensors for ``causal-leakage`` and
``target-leakage``; the callback :class:`lightning_sanity.callbacks.leakage.LeakageChecks` runs the model.

- task recognition: targets that are the inputs shifted by one along a time axis (:func:`shift_axis`, a
  next-element task), or equal to the inputs at the same positions (:func:`same_positions`);
- dependency by perturbation: change a sequence after position ``t`` (:func:`perturb_after`) and measure how far
  the outputs at positions up to ``t`` moved (:func:`change_up_to`). This is the practice write-ups' "use
  backprop to chart dependencies" done without autograd, so it works for token ids and floats alike;
- a feature column that equals (one value per class) or encodes (one-hot, affine) the label
  (:func:`label_columns`);
- a model that predicts random, unknowable targets better than chance reads them (:func:`reads_random_targets`).

Example::

    >>> import torch
    >>> x = torch.arange(12).reshape(2, 6)
    >>> shift_axis(x[:, :-1], x[:, 1:])
    1
    >>> out = x.float().cumsum(1)[..., None]      # causal: position t sums positions <= t
    >>> g = torch.Generator().manual_seed(0)
    >>> x2 = perturb_after(x, 2, 1, g)
    >>> bool((x2[:, :3] == x[:, :3]).all()), bool((x2[:, 3:] != x[:, 3:]).all())
    (True, True)
    >>> change_up_to(out, x2.float().cumsum(1)[..., None], 2)[0]
    0.0
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from lightning_sanity.checks.label_groups import indicator_columns, indicator_group
from lightning_sanity.checks.label_markers import marker_columns
from lightning_sanity.checks.label_order import block_columns, monotone_columns
from lightning_sanity.checks.numerics import is_finite

#: Outputs up to position t may move by this much, relative to the outputs' magnitude, when only later positions
#: change. A causal model gives exactly identical outputs there (masked attention weights are exact zeros, a left-
#: padded convolution never reads them); the margin absorbs float32 round-off of fused kernels only.
CHANGE_RTOL = 1e-5
#: The same for 16-bit outputs, whose round-off is ~1e-3.
CHANGE_RTOL_HALF = 1e-2
#: Cross-entropy against uniformly random targets is at least ln V in expectation (ln V plus the KL divergence
#: from the uniform distribution to the prediction), whatever the model: a loss this far below it reads the targets.
RANDOM_LOSS_FRACTION = 0.75
#: What to try, for the findings.
CAUSAL_ADVICE = (
    "Give every attention over the sequence a causal mask (`mask=nn.Transformer.generate_square_subsequent_mask(T)` "
    "with `is_causal=True` for `nn.TransformerEncoder`; `src_mask` and `memory_mask` too for an encoder-decoder "
    "`nn.Transformer`; a float mask is added to the scores, so it needs `-inf` where blocked: `triu(ones).bool()`, "
    "not `triu(ones)`), pad convolutions on the left only (`F.pad(x, (k - 1, 0))` instead of `padding=k // 2`), "
    "use unidirectional RNNs, and never normalise or pool over the time axis.")
DECODER_ADVICE = (
    "Feed the decoder the target shifted right by one (a start token followed by `target[:, :-1]`; for a "
    "next-token model that is the inputs), never the target itself, and keep its causal `tgt_mask`.")

#: Output units per position compared (evenly strided): a hidden state that moved moves every logit, so 1024 of a
#: 32k vocabulary show it as all would, at 1/32 of the passes (the comparison cost as much as the extra forwards).
COMPARED_UNITS = 1024

#: Ignored target positions (``ignore_index``, HuggingFace's -100) are negative.
IGNORED = 0


def shift_axis(x: torch.Tensor, y: torch.Tensor) -> Optional[int]:
    """The axis ``d >= 1`` along which ``y`` is ``x`` shifted by one (``y[.., t] == x[.., t + 1]``), or None.

    Target positions below 0 (ignored) are not compared; at least half the positions must be compared.

    >>> import torch
    >>> s = torch.tensor([[1., 2., 3., 4., 5.]])
    >>> shift_axis(s[:, :-1], s[:, 1:]), shift_axis(s, s)
    (1, None)
    """
    if not _comparable(x, y):
        return None
    for d in range(1, x.dim()):
        n = x.shape[d]
        if n < 3:
            continue
        a, b = x.narrow(d, 1, n - 1), y.narrow(d, 0, n - 1)
        if _agree(a, b):
            return d
    return None


def step_shift_axis(x: torch.Tensor, target: torch.Tensor) -> Optional[int]:
    """The axis along which a loss ``target`` made in ``training_step`` is the model input ``x`` shifted by one,
    or None: any shape of the same values (``F.cross_entropy(out.flatten(0, 1), seq[:, 1:].flatten())`` with
    ``x = seq[:, :-1]``), the input's next elements (``x = seq``, ``target = seq[:, 1:]``), or one channel of a
    ``(B, T, C)`` input shifted by one (:func:`~lightning_sanity.checks.future_features.shifted_channel`).

    >>> import torch
    >>> seq = torch.tensor([[3., 1., 4., 1., 5., 9.], [2., 7., 1., 8., 2., 8.]])
    >>> step_shift_axis(seq[:, :-1], seq[:, 1:].flatten()), step_shift_axis(seq, seq[:, 1:]), step_shift_axis(seq, seq)
    (1, 1, None)
    """
    from lightning_sanity.checks.future_features import shifted_channel

    if not isinstance(x, torch.Tensor) or not isinstance(target, torch.Tensor) or x.dim() < 2 or target is x:
        return None
    t = target.detach()
    if t.numel() == x.numel():
        axis = shift_axis(x, t.reshape(x.shape))
        if axis is not None:
            return axis
    for d in range(1, x.dim()):
        n = x.shape[d]
        if n >= 3 and t.numel() == x.numel() // n * (n - 1):
            later = x.narrow(d, 1, n - 1)
            if _comparable(later, t.reshape(later.shape)) and _agree(later, t.reshape(later.shape)):
                return d
    if x.dim() == 3 and x.shape[0] and t.numel() % x.shape[0] == 0:
        found = shifted_channel(x, t.reshape(x.shape[0], -1))
        return found[0] if found is not None else None
    return None


def same_positions(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Integer token sequences ``(B, T, ...)`` whose targets equal the inputs at the same positions.

    >>> import torch
    >>> ids = torch.tensor([[5, 6, 7, 8]])
    >>> same_positions(ids, ids), same_positions(ids, torch.tensor([[-100, 6, 7, -100]])), same_positions(ids, ids + 1)
    (True, True, False)
    """
    if not _comparable(x, y) or x.is_floating_point() or x.shape[1] < 2:
        return False
    return _agree(x, y)


#: A sequence task whose supervised targets are the input token at the same position this often or more is mostly a
#: copy task: more than half of its loss is minimised by the identity, whatever else it is meant to learn.
COPIED_SHARE = 0.5


def copied_positions(x: torch.Tensor, y: torch.Tensor) -> Optional[torch.Tensor]:
    """Integer token sequences whose supervised targets (``y >= 0``) equal the input at the same position at more
    than :data:`COPIED_SHARE` of the positions, unless :func:`same_positions` holds (every target the input, most
    positions supervised: a next-token task whose loss may shift): the ``(B, T)`` mask of the copied positions,
    else None. A masked LM whose labels are kept at every position, not only at the masked ones, is the typical
    case; so is one whose collate labels a few positions but returns the unmasked ids as input (every supervised
    target copied, most positions ignored). A correct one copies at most the ~10 % of its masked positions that
    BERT's recipe leaves unchanged.

    >>> import torch
    >>> ids = torch.tensor([[5, 6, 7, 8, 9, 4]])
    >>> masked = torch.tensor([[5, 0, 7, 8, 9, 4]])
    >>> copied_positions(masked, ids).tolist(), copied_positions(masked, torch.tensor([[-100, 6, -100, -100, -100, -100]]))
    ([[True, False, True, True, True, True]], None)
    >>> copied_positions(ids, torch.tensor([[-100, 6, -100, -100, 9, -100]])).tolist()  # unmasked ids as input
    [[False, True, False, False, True, False]]
    """
    if not _comparable(x, y) or x.is_floating_point() or x.shape[1] < 2:
        return None
    used = y >= IGNORED
    copied = (x == y) & used
    count, supervised = int(copied.sum()), int(used.sum())
    if supervised == 0 or count <= COPIED_SHARE * supervised or (count == supervised and same_positions(x, y)):
        return None
    return copied


def _comparable(x: object, y: object) -> bool:
    return (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dim() >= 2 and x.shape == y.shape
            and x.is_floating_point() == y.is_floating_point() and not x.is_complex())


def _agree(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.is_floating_point():
        return bool(torch.equal(a, b)) and bool(a.flatten(1).std(1).gt(0).any())
    used = b >= IGNORED
    if int(used.sum()) * 2 < b.numel():
        return False
    return bool(((a == b) | ~used).all()) and int(torch.unique(a[used]).numel()) > 1


def split_positions(length: int) -> tuple[int, ...]:
    """The middle position ``t``, then ``t - 1``: of two boundaries one apart, one cuts a block of any pool at any
    offset (``avg_pool1d`` then upsampling mixes within blocks only); a causal model passes at both."""
    t = (length - 1) // 2
    return (t, t - 1) if t >= 1 else (t,)


def perturb_after(x: torch.Tensor, t: int, axis: int, generator: torch.Generator, start_offset: int = 1) -> torch.Tensor:
    """A copy of ``x`` whose positions ``> t`` (``>= t`` with ``start_offset=0``) along ``axis`` all differ.

    Tokens move to another token id in ``[0, max + 1)`` (never an id the embedding cannot hold); floats move by
    about one standard deviation of ``x`` (the same noise everywhere when ``x`` is constant). Draws from
    ``generator`` only, never from the global RNG.
    """
    start = t + start_offset
    out = x.clone()
    n = x.shape[axis] - start
    if n <= 0:
        return out
    part = x.narrow(axis, start, n)
    if x.is_floating_point():
        scale = float(x.float().std()) if x.numel() > 1 else 0.0
        scale = scale if math.isfinite(scale) and scale > 0 else 1.0
        noise = torch.randn(part.shape, generator=generator).to(x.device, x.dtype) * scale
        noise = torch.where(noise.abs() < 0.1 * scale, torch.full_like(noise, 0.5 * scale), noise)
        new = part + noise
    else:
        vocab = int(x.max()) + 1
        if vocab < 2:
            raise ValueError("token ids hold a single value; nothing to change them to")
        step = torch.randint(1, vocab, part.shape, generator=generator).to(x.device)
        new = torch.where(part >= 0, (part + step) % vocab, part)  # negative ids (padding, ignored) stay
    out.narrow(axis, start, n).copy_(new)
    return out


def positions_view(out: torch.Tensor, batch: int, length: int, axis: Optional[int] = None) -> Optional[torch.Tensor]:
    """``out`` as ``(B, T, -1)`` with positions on dimension 1, or None when no dimension holds ``length`` positions.

    Understood: ``(B, T, ...)``, ``(B, C, T)`` (channels first, ``axis=2`` or the only dimension of size T), and
    flattened ``(B*T, C)`` (the demos Transformer).

    >>> import torch
    >>> positions_view(torch.zeros(6, 5), 2, 3).shape
    torch.Size([2, 3, 5])
    """
    if out.dim() >= 1 and out.shape[0] == batch * length and batch > 1 and out.shape[0] != batch:
        return out.reshape(batch, length, -1)
    if out.dim() < 2 or out.shape[0] != batch:
        return None
    dims = [d for d in range(1, out.dim()) if out.shape[d] == length]
    if not dims:
        return None
    d = axis if axis in dims else dims[0]
    return out.movedim(d, 1).reshape(batch, length, -1)


def change_up_to(base: torch.Tensor, other: torch.Tensor, t: int) -> tuple[float, float, int]:
    """``(largest change, output scale, first position that changed or -1)`` over positions ``0..t`` of two
    ``(B, T, C)`` outputs."""
    a, b = base[:, : t + 1].float(), other[:, : t + 1].float()
    base_finite = is_finite(base)
    if base_finite and is_finite(b) and a.numel():
        # The usual case, without the masks (a 32k-vocabulary output makes each as large as the output).
        per_position = (a - b).abs().amax(dim=(0, 2))
    else:
        finite = torch.isfinite(a) & torch.isfinite(b)
        diff = torch.where(finite, (a - b).abs(), torch.zeros_like(a))
        nonfinite_changed = (torch.isfinite(a) != torch.isfinite(b))
        per_position = diff.amax(dim=(0, 2)) if diff.numel() else diff.new_zeros(t + 1)
        # A value that turns NaN/Inf only when later positions change is as much a dependence as a finite change.
        per_position = torch.where(nonfinite_changed.any(dim=2).any(dim=0), torch.full_like(per_position, math.inf),
                                   per_position)
    if base_finite:
        scale = float(base.float().abs().amax())
    else:
        scale = float(torch.where(torch.isfinite(base), base.float().abs(), torch.zeros_like(base, dtype=torch.float)).max())
    largest = float(per_position.max()) if per_position.numel() else 0.0
    tol = CHANGE_RTOL * max(scale, 1e-3)
    moved = (per_position > tol).nonzero()
    return largest, scale, int(moved[0]) if moved.numel() else -1


def depends(change: float, scale: float, half: bool = False) -> bool:
    """Whether a change of outputs is more than round-off at their scale."""
    rtol = CHANGE_RTOL_HALF if half else CHANGE_RTOL
    return change > rtol * max(scale, 1e-3)


def label_columns(x: torch.Tensor, y: torch.Tensor, min_samples: int = 16,
                  equal_only: bool = False) -> tuple[list[int], str]:
    """Columns of a tabular input ``(N, F)`` (float, or integer-coded categories) that give the label away, and
    how: ``"equal"`` (one value per class and one class per value), ``"one-hot"`` (an indicator column for every
    class seen), ``"marker"`` (one value on exactly one class's rows), ``"one-hot group"`` (the levels of a
    category, each held by one class, together marking every row), ``"blocks"`` (sorted by it, the rows fall into
    one interval per class), ``"affine"`` (a regression target up to
    scale and offset) or ``"monotone"`` (ordered exactly as a regression target on every pair of rows: its bins,
    beyond chance). ``([], "")`` when none does or the batch is too small to say. ``equal_only``: class labels are
    tested for ``"equal"`` only (image pixels: the other forms are not judged there, and sorting thousands of
    columns for ``"blocks"`` cost a CNN's first step about 10 ms).

    >>> import torch
    >>> y = torch.arange(32) % 3
    >>> x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    >>> label_columns(x, y)
    ([], '')
    >>> label_columns(torch.cat([x, y[:, None].float() * 0.5 - 1], 1), y)
    ([4], 'equal')
    >>> label_columns(x[:2].repeat(16, 1), torch.tensor([0, 1]).repeat(16))  # two distinct rows prove nothing
    ([], '')
    """
    if x.dim() != 2 or x.is_complex() or y.dim() not in (1, 2) or x.shape[0] < min_samples:
        return [], ""
    if y.dim() == 2:
        if y.shape[1] != 1:
            return [], ""
        y = y[:, 0]
    x, y = x.detach().float().cpu(), y.detach().cpu()
    finite = torch.isfinite(x).all(1)
    if not bool(finite.all()):
        return [], ""
    # Only distinct rows are evidence: a batch holding two rows repeated (a sampler given per-class weights) makes
    # every column "equal" the label.
    pairs = torch.unique(torch.cat([x.double(), y.double()[:, None]], 1), dim=0)
    x, y = pairs[:, :-1].float(), pairs[:, -1].to(y.dtype)
    n = x.shape[0]
    if not y.is_floating_point() or bool((y == y.round()).all()):
        labels = y.long()
        classes, per_class = torch.unique(labels, return_counts=True)
        # A label must repeat for "one value per class" to mean anything: with as many classes as samples every
        # column of distinct values would "equal" the label.
        if not 2 <= classes.numel() <= n // 2 or chance_column(per_class.tolist(), x.shape[1]) > CHANCE_COLUMN:
            return [], ""
        _, index = torch.unique(labels, return_inverse=True)
        equal = _bijective_columns(x, index, classes.numel())  # all columns at once: ~15 ms less than a loop on 64
        if equal or equal_only:
            return equal, "equal" if equal else ""
        if classes.numel() >= 3:
            indicator = indicator_columns(x, index, classes.numel())  # (columns, classes)
            if bool(indicator.any(0).all()):
                return sorted(set(indicator.to(torch.uint8).argmax(0).tolist())), "one-hot"
        marked = marker_columns(x, labels)  # one value on exactly the rows of one class (checks/label_markers.py)
        if marked:
            return marked, "marker"
        grouped = indicator_group(x, labels)  # the levels of a category that decides the label (label_groups.py)
        if grouped:
            return grouped, "one-hot group"
        blocks = block_columns(x, index, classes.numel())  # one interval of values per class (label_order.py)
        return (blocks, "blocks") if blocks else ([], "")
    # Any column is exactly affine in the target on two distinct rows, and nearly always on three.
    if x.shape[1] < 2 or n < AFFINE_ROWS:  # the only feature cannot leak: it is the task
        return [], ""
    yc = y.float() - y.float().mean()
    if float(yc.std()) == 0:
        return [], ""
    xc = x - x.mean(0)
    denom = xc.norm(dim=0) * yc.norm()
    corr = (xc * yc[:, None]).sum(0) / torch.where(denom > 0, denom, torch.ones_like(denom))
    columns = [j for j in range(x.shape[1]) if float(denom[j]) > 0 and abs(float(corr[j])) > 1 - 1e-6]
    if columns:
        return columns, "affine"
    columns = monotone_columns(x, y.double(), CHANCE_COLUMN)
    return (columns, "monotone") if columns else ([], "")


#: A column may be reported as the label when, with the labels of the distinct rows shuffled at random, some
#: column among all scanned would match them by chance with probability below this (a permutation test's level).
CHANCE_COLUMN = 1e-3
#: Distinct rows needed before an exact affine relation means anything: through two points every column is affine,
#: and three random points fall on a line to 1e-6 correlation about once in a thousand.
AFFINE_ROWS = 8


def log_partition_chance(per_class: list[int]) -> float:
    """``log(prod(d_c!) / d!)``: the log-chance that shuffled labels of ``d`` distinct rows fall into one given
    split into groups of these class sizes (the permutation bound behind :func:`chance_column` and the label
    tokens of :mod:`.target_inputs`)."""
    return sum(math.lgamma(k + 1) for k in per_class) - math.lgamma(sum(per_class) + 1)


def chance_column(per_class: list[int], columns: int) -> float:
    """Upper bound on the chance that some of ``columns`` unrelated columns takes one value per class and another
    per class on distinct rows with these class counts: a permutation test. Shuffling the labels of ``d`` distinct
    rows, one column's value groups equal the classes with probability at most ``c! prod(d_c!) / d!`` (its groups
    must have the classes' sizes, in one of ``c!`` orders), and a one-hot column's indicator likewise.

    >>> chance_column([1, 1], 30)        # two distinct rows: any column "is" the label
    1.0
    >>> chance_column([11, 11, 10], 30) < 1e-10
    True
    """
    log_p = math.lgamma(len(per_class) + 1) + log_partition_chance(per_class)
    return min(1.0, columns * math.exp(log_p))


def _bijective_columns(x: torch.Tensor, index: torch.Tensor, classes: int) -> list[int]:
    """Columns of ``x`` holding one value per class and a different value for each class (``index``: each
    sample's class, 0..classes-1)."""
    rows = index[:, None].expand_as(x)
    low = torch.full((classes, x.shape[1]), math.inf).scatter_reduce(0, rows, x, "amin")
    high = torch.full((classes, x.shape[1]), -math.inf).scatter_reduce(0, rows, x, "amax")
    ordered = low.sort(0).values
    ok = (low == high).all(0) & (ordered[1:] != ordered[:-1]).all(0)
    return torch.nonzero(ok).flatten().tolist()


def chance_margin(chance: float, count: int) -> float:
    """Accuracy on random targets that chance alone stays below: chance + 0.1 + 4 binomial standard deviations."""
    return chance + 0.1 + 4 * math.sqrt(max(chance * (1 - chance), 1e-12) / max(count, 1))


def reads_random_targets(accuracy: float, chance: float, count: int) -> bool:
    """Whether predicting ``count`` random targets (each right by chance with probability ``chance``) with this
    accuracy needs reading them.

    >>> reads_random_targets(0.9, 1 / 50, 256), reads_random_targets(0.05, 1 / 50, 256)
    (True, False)
    """
    return accuracy > chance_margin(chance, count)

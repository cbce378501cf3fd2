"""Near copies across a split: validation samples whose nearest training neighbours are far closer than their natural
neighbours (jittered or noisy copies of one record, made before the split).

Pure functions on tensors. Each float sample is reduced to a small sketch (centred, unit-normed, projected on
:data:`SKETCH_DIMS` fixed random directions; short tabular rows are standardised per feature instead), then each
validation sketch's ``K`` nearest training sketches are found. Natural data, of any intrinsic dimension ``m``,
spreads its neighbours smoothly: ``(d_j / d_k0)^m`` follows Beta(j, k0 - j) (the j-th nearest of ``k0 - 1`` points
uniform in an ``m``-ball). A record's copies sit far below: ``d_1 .. d_c`` are the copies' noise, ``d_k0`` a natural
distance. ``m`` is the Levina-Bickel estimate from neighbours ``k0..K`` (beyond any plausible count of copies), the
smaller of the sample's own and the training data's median (a smaller ``m`` flags less).

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> base = torch.randn(600, 32, generator=g)
    >>> copies = torch.cat([base, base + 0.01 * torch.randn(600, 32, generator=g)])
    >>> order = torch.randperm(1200, generator=g)
    >>> train, val = copies[order[:1000]], copies[order[1000:]]
    >>> judge(sketch(train), sketch(val))["share"] > 0.5
    True
    >>> judge(sketch(base[:500]), sketch(base[500:]))["share"]
    0.0
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

from lightning_sanity.checks.splits import off_grid_share

#: dimensions of a sketch; values of a sample read at most (evenly spaced) before projecting.
SKETCH_DIMS = 64
SKETCH_VALUES = 4096
#: neighbours read (the ``K`` nearest), the local scale (the ``K0``-th) and how many of the nearest may be copies.
#: Sketches (images, signals) test the nearest alone against the 8th: windows of a smooth or periodic series have
#: neighbourhoods on two scales (the adjacent window, the same phase a period earlier) that a dimension read further
#: out takes for copies. Tabular rows test each of the 15 nearest against the 16th: eight jittered copies of a record
#: leave about six in training, and the nearest alone is then no closer than the natural spacing of six allows.
SINGLE, CLUSTERS = (16, 8, 1), (32, 16, 15)
K, K0 = SINGLE[:2]
#: a validation sample is a near copy when natural spacing gives one of its ``d_j / d_k0`` with probability below
#: this (over the values of ``j`` tried: each is held to its share of it) ...
P_COPY = 1e-3
#: ... and that neighbour is at most this share of the ``k0``-th one.
MAX_RATIO = 0.5
#: flat rows of at most this many features are tabular: standardised per feature rather than per sample.
TABULAR_FEATURES = 64
#: sketch distances below this are exact copies (float error of the distance), left to the exact fingerprints.
EXACT = 2e-3
#: intrinsic dimension read at most (ties at the local scale would make it infinite).
MAX_DIMS = 20.0
#: training sketches used as queries to estimate the training data's intrinsic dimension (a median: 128 suffice).
DIM_QUERIES = 128
#: validation samples searched first (see :func:`judge`).
FIRST_LOOK = 64
#: exact copies of a query read past at most, beyond its ``k`` neighbours; a sample with more is the exact path's.
EXACT_EXTRA = 4
_PROJECTIONS: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}


def sketch(x: torch.Tensor) -> torch.Tensor:
    """``(B, SKETCH_DIMS)`` float32 sketches of the samples of ``x``, on its device: at most :data:`SKETCH_VALUES`
    evenly spaced values, centred and unit-normed (contrast and brightness do not count), then projected on fixed
    random directions (a private generator: the global RNG is not consumed)."""
    rows = x.detach().reshape(x.shape[0], -1)
    key = (int(rows.shape[1]), str(rows.device))
    made = _PROJECTIONS.get(key)
    if made is None:
        width = key[0]
        index = (torch.linspace(0, width - 1, SKETCH_VALUES).long() if width > SKETCH_VALUES
                 else torch.arange(width))
        g = torch.Generator().manual_seed(0x5C7)
        projection = torch.randn(index.numel(), SKETCH_DIMS, generator=g) / math.sqrt(SKETCH_DIMS)
        made = _PROJECTIONS[key] = (index.to(rows.device), projection.to(rows.device))
    index, projection = made
    rows = rows.index_select(1, index).float() if index.numel() != rows.shape[1] else rows.float()
    rows = rows - rows.mean(dim=1, keepdim=True)
    rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return rows @ projection


def float_values(x: torch.Tensor) -> bool:
    """Whether ``x`` holds real-valued samples worth sketching: floating point with some values off the integer grid
    (token ids or one-hot codes cast to float sit on it), at least two values per sample."""
    if not x.is_floating_point() or x.dim() < 2 or x.shape[0] == 0 or x[0].numel() < 2:
        return False
    return off_grid_share(x[:64].detach().reshape(-1)[:65536]) > 0.05


def nearest(queries: torch.Tensor, refs: torch.Tensor, k: int = K, skip_self: bool = False,
            block: int = 256) -> torch.Tensor:
    """``(Q, k)`` ascending distances from each query to its ``k`` nearest references, exact copies (below
    :data:`EXACT`) left out; ``skip_self``: the queries are the first rows of ``refs`` (leave the sample out)."""
    out = []
    for start in range(0, queries.shape[0], block):
        d = torch.cdist(queries[start:start + block], refs)
        # The few nearest, then exact copies (the query itself, when skip_self) dropped: masking the whole block
        # first cost as much as the distances.
        near = d.topk(min(k + EXACT_EXTRA, d.shape[1]), dim=1, largest=False).values
        near = near.masked_fill(near < EXACT, float("inf")).sort(dim=1).values[:, :k]
        out.append(near)
    return torch.cat(out) if out else queries.new_zeros(0, k)


def dims(near: torch.Tensor, k0: int = K0) -> torch.Tensor:
    """Per row of :func:`nearest`, the Levina-Bickel intrinsic dimension from its neighbours ``k0..K``: natural
    spacing gives ``E log(d_K / d_j) = H_j / m`` with ``H_j = sum_{i=j}^{K-1} 1/i``."""
    k = near.shape[1]
    harmonic = sum(sum(1.0 / i for i in range(j, k)) for j in range(k0, k))
    logs = torch.log(near[:, k - 1:k] / near[:, k0 - 1:k - 1]).clamp_min(0).sum(dim=1)
    return (harmonic / logs.clamp_min(1e-9)).clamp(1.0, MAX_DIMS)


def copy_flags(near: torch.Tensor, m: torch.Tensor, k0: int = K0, copies: int = 1) -> torch.Tensor:
    """Rows of :func:`nearest` whose nearest neighbours are copies: for some ``j <= copies``, ``P(Beta(j, k0 - j) <
    (d_j / d_k0)^m)`` below :data:`P_COPY` / ``copies`` with ``d_j / d_k0`` below :data:`MAX_RATIO`. ``j = 1`` is
    one copy; a record copied ``c`` times shows at ``j = c``, where the copies end and natural spacing begins."""
    n = k0 - 1
    finite = torch.isfinite(near[:, n])
    ratio = (near[:, :copies] / near[:, n:k0].clamp_min(1e-12)).double()
    ratio = ratio.where(finite[:, None], torch.ones_like(ratio))
    x = (ratio ** m.double()[:, None]).clamp(1e-300, 1 - 1e-16)
    # P(Beta(j, n + 1 - j) < x) = P(Binomial(n, x) >= j): the binomial terms i = 0..n, summed from j up.
    i = torch.arange(n + 1, dtype=torch.float64, device=near.device)
    log_choose = math.lgamma(n + 1) - torch.lgamma(i + 1) - torch.lgamma(n - i + 1)
    terms = torch.exp(log_choose + i * x[..., None].log() + (n - i) * torch.log1p(-x[..., None]))
    tails = terms.flip(-1).cumsum(-1).flip(-1)[..., 1:copies + 1]  # [row, j, i] -> P(Binomial >= i); keep i = j
    chance = tails.diagonal(dim1=1, dim2=2).where(ratio < MAX_RATIO, torch.ones_like(ratio))
    return (chance.min(dim=1).values * copies < P_COPY) & finite


#: tabular columns with fewer distinct training values than this are categories or counts, not measurements.
DISCRETE_LEVELS = 32
#: ... counted on this many rows of the training split.
LEVEL_ROWS = 1024


def standardise(train: torch.Tensor, val: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Tabular rows on the training split's per-feature scale: per-sample centring would fold a few features onto
    a circle, where a record's jittered copies lie among its natural neighbours. Columns of few levels (a count, a
    category's code, a per-group statistic) are left out: they cut the rows into cells smaller than the neighbours
    the test reads, and each cell's rows then sit far inside the spacing between cells, like copies."""
    train, val = train.float(), val.float()
    # Levels counted on the first rows: a column of fewer than 32 levels shows fewer there too, a measurement
    # nearly as many as rows (a sort of 1,024 rows instead of one per column of all of them: 1 ms, not 30).
    head = train[:LEVEL_ROWS].sort(dim=0).values
    levels = 1 + (head[1:] != head[:-1]).sum(dim=0)
    kept = levels >= min(DISCRETE_LEVELS, max(2, head.shape[0] // 4))
    if bool(kept.any()) and not bool(kept.all()):
        train, val = train[:, kept], val[:, kept]
    # torch's std over dim 0 of a (N, F) table runs column-strided passes: 5 ms on 12,800 x 64, the centred sum of
    # squares 1.4 ms (the same values to float32 rounding).
    mean = train.mean(dim=0)
    train = train - mean
    std = (train.square().sum(dim=0) / max(train.shape[0] - 1, 1)).sqrt_().clamp_min_(1e-6)
    return train.div_(std), (val - mean).div_(std)


def judge(train: torch.Tensor, val: torch.Tensor, min_train: int = 200, min_val: int = 50,
          clusters: bool = False) -> Optional[dict[str, Any]]:
    """Share of validation sketches with a near copy in training, and the same share within training (each
    training sample against the others; ``None`` when no validation sample came near): ``None`` when a split is
    too small to read natural spacing. ``clusters``: tabular rows (:data:`CLUSTERS`), else :data:`SINGLE`."""
    k, k0, copies = CLUSTERS if clusters else SINGLE
    train, val = train.float(), val.float()
    if train.shape[0] < max(min_train, 4 * k) or val.shape[0] < min_val:
        return None

    def flags_at(near: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return copy_flags(near, m, k0, copies)

    def search(queries: torch.Tensor) -> torch.Tensor:
        outer = nearest(queries, train, k)
        return outer[torch.isfinite(outer[:, -1])]  # only exact copies left (or too few distinct): the exact path's

    # A first look at FIRST_LOOK validation samples, then all of them only if it flags any: a share worth reporting
    # (0.1) leaves 64 samples unflagged 0.9 ** 64 (about 1e-3) of the time, and a run without copies pays a quarter.
    outer = search(val[:FIRST_LOOK])
    own = dims(outer, k0)
    if outer.shape[0] >= min_val and not bool(flags_at(outer, own).any()):
        # The training data's dimension only lowers ``m``, which flags fewer: nothing flagged at the samples' own
        # ``m`` is nothing at all, and a run without copies skips the search within training (two thirds of the cost).
        return {"share": 0.0, "found": 0, "samples": int(outer.shape[0]), "train_share": None,
                "dims": float(own.median()), "ratio": float((outer[:, 0] / outer[:, k0 - 1]).median()), "k0": k0}
    inner = nearest(train[:DIM_QUERIES], train, k, skip_self=True)
    usable = torch.isfinite(inner[:, -1])
    if int(usable.sum()) < min_val:
        return None
    m_train = float(dims(inner[usable], k0).median())
    flags = flags_at(outer, own.clamp(max=m_train))
    if val.shape[0] > FIRST_LOOK and (outer.shape[0] < min_val or bool(flags.any())):
        outer = search(val)
        flags = flags_at(outer, dims(outer, k0).clamp(max=m_train))
    if outer.shape[0] < min_val:
        return None
    inner_flags = flags_at(inner[usable], dims(inner[usable], k0).clamp(max=m_train))
    return {"share": float(flags.float().mean()), "found": int(flags.sum()), "samples": int(outer.shape[0]),
            "train_share": float(inner_flags.float().mean()), "dims": m_train,
            "ratio": float((outer[:, 0] / outer[:, k0 - 1]).median()), "k0": k0}

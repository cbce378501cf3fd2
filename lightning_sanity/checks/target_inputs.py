"""Inputs computed from the target: pure functions on the first training batch for ``target-leakage``; the glue is
:mod:`lightning_sanity.callbacks._target_inputs`.

Three shapes of one bug, each tested as "the input is a function of the target, beyond chance":

- an image channel computed from a dense class mask (Sobel edges of the mask instead of the image): at every
  interior pixel the channel's value is one function of the mask's 3x3 (or 5x5) window around it
  (:func:`mask_channels`);
- a token classifier whose input holds its label's word (a prompt template that appends the verbalised label):
  for every class seen, some token is present in exactly the samples of that class (:func:`label_tokens`);
- a per-position auxiliary feature of a next-token model computed from the next token (a "word end" flag read from
  the following character): its value at ``t`` is one function of the target at ``t`` but of no short window of
  the inputs up to ``t`` (:func:`next_token_features`).

"One function of the keys" is exact: within every group of equal keys the value is the same (to float round-off).
Such a match is only evidence when it is unlikely by chance: ``n`` values falling into ``g`` groups all agree
within their groups with probability at most ``p ** (n - g)`` for an unrelated value whose two draws collide with
probability ``p`` (:func:`determined`; chances are returned as powers of ten, ``log10``).

Example::

    >>> import torch
    >>> keys = torch.arange(200) % 4
    >>> determined(keys, (keys * 2.5).float())[0], determined(keys, torch.randn(200))[0]
    (True, False)
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from lightning_sanity.checks.leakage import log_partition_chance
from lightning_sanity.checks.splits import hash_rows

#: A function of the keys is reported when all the values scanned would match their groups by chance with
#: probability below this (a permutation test's level, as for the label column in :mod:`.leakage`).
CHANCE = 1e-3
#: Values within this share of the feature's spread are "the same": float32 round-off of the same formula on the
#: same window is ~1e-7 of it, a measured quantity (pixel noise, a real covariate) far more.
SAME_SHARE = 1e-5
#: Rows scanned at most (pixels, positions, samples): an exact relation holds on any subset, and this bounds the
#: fit-start cost (a few ``torch.unique`` over at most this many rows; ~0.1 s for a 3-channel image batch).
MAX_ROWS = 16384
#: Window sides tried around each pixel of a mask: hand-made image features (Sobel, Laplacian, dilation) are 3x3
#: or 5x5 filters.
WINDOWS = (3, 5)
#: Lengths of the window of inputs up to ``t`` that may explain a per-position feature (a flag computed from the
#: previous characters); longer windows are mostly unique and prove nothing either way.
PAST = (1, 2, 3, 4)
#: Classes of a dense target at most: more values are a regression map (depth, a clean image), where an input
#: that is a function of the target's neighbourhood is the task itself (deblurring, super-resolution).
MAX_CLASSES = 64
#: Places from the end of a text where a template may put the label word ("... [SEP] sports", "... sports .").
TAIL = 3
#: Batch keys that are not per-position features: the tokens, their positions and segments, and anything named like a
#: mask, label, target or weight (a loss mask is a function of the target by design: it says where the target is
#: padding, and the model need not read it).
NOT_FEATURES = ("input_ids", "token_type_ids", "position_ids")
NOT_FEATURE_WORDS = ("mask", "label", "target", "weight")


def is_feature_key(key: object) -> bool:
    """Whether a batch key may name a per-position input feature.

    >>> is_feature_key("word_end"), is_feature_key("attention_mask"), is_feature_key("loss_weights")
    (True, False, False)
    """
    return isinstance(key, str) and key not in NOT_FEATURES and not any(w in key.lower() for w in NOT_FEATURE_WORDS)


def groups(keys: torch.Tensor) -> torch.Tensor:
    """Each row's group of equal keys (``keys`` ``(n,)`` or ``(n, k)``): ``(n,)`` integers from 0. Integer rows are
    hashed to one int64 first (``torch.unique(dim=0)`` over 65536 rows of 25 costs ~0.2 s, its hash ~0.01 s): a collision can only
    merge two groups, which makes an exact relation harder to find, never easier."""
    keys = keys.reshape(keys.shape[0], -1)
    if not keys.is_floating_point() and keys.shape[1] > 1:
        keys = hash_rows(keys, halves=False)[:, None]  # split-overlap's row hash: private weights, mod 2^64
    if keys.shape[1] == 1:
        return torch.unique(keys[:, 0], return_inverse=True)[1]
    return torch.unique(keys, dim=0, return_inverse=True)[1]


def determined(keys: torch.Tensor, values: torch.Tensor, tests: int = 1, group: Optional[torch.Tensor] = None
               ) -> tuple[bool, float]:
    """Whether ``values`` (``(n,)``) are one function of ``keys`` (``(n,)`` or ``(n, k)``; or their :func:`groups`
    given as ``group``) with evidence beyond chance over ``tests`` such scans, and ``log10`` of the chance bound
    ``tests * p ** (n - g)``. A constant value proves nothing.
    """
    values = values.detach().double().reshape(-1)
    spread = float(values.max() - values.min()) if values.numel() else 0.0
    if values.numel() < 2 or spread == 0 or not math.isfinite(spread):
        return False, 0.0
    tol = SAME_SHARE * spread
    group = groups(keys) if group is None else group
    g = int(group.max()) + 1
    low = torch.full((g,), math.inf, dtype=torch.float64).scatter_reduce(0, group, values, "amin")
    high = torch.full((g,), -math.inf, dtype=torch.float64).scatter_reduce(0, group, values, "amax")
    if bool((high - low > tol).any()):
        return False, 0.0
    _, counts = torch.unique(torch.round(values / tol), return_counts=True)
    collide = float(((counts.double() / values.numel()) ** 2).sum())
    log_chance = math.log(tests) + (values.numel() - g) * math.log(max(collide, 1e-300))
    # as a power of ten: exact evidence on a large batch underflows a float (1e-207 and far below)
    return log_chance < math.log(CHANCE), min(log_chance, 0.0) / math.log(10)


def _classes(y: torch.Tensor) -> Optional[torch.Tensor]:
    """``y`` as integer classes when it holds few distinct whole values, else None."""
    if y.is_complex() or (y.is_floating_point() and not bool((y == y.round()).all())):
        return None
    return y.long() if int(torch.unique(y).numel()) <= MAX_CLASSES else None


def mask_channels(x: torch.Tensor, y: torch.Tensor) -> list[tuple[int, int, float]]:
    """Channels of an image batch ``x`` (``(B, C, H, W)`` floats) that are, at every interior pixel, one function of
    the class mask ``y`` (``(B, H, W)`` or ``(B, 1, H, W)``) over a window around it but not of the pixel's own
    class: ``[(channel, window side, chance)]``. Silent unless some other channel is no such function (the image
    itself: an input made only of a rendering of the mask is a noise-free toy task, not a leak).

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> m = (torch.rand(8, 1, 12, 12, generator=g) > 0.5).float()
    >>> img = m + torch.randn(8, 1, 12, 12, generator=g)
    >>> edges = torch.nn.functional.conv2d(m, torch.ones(1, 1, 3, 3), padding=1) * m
    >>> mask_channels(torch.cat([img, edges], 1), m)[0][:2], mask_channels(torch.cat([img, img * 2], 1), m)
    ((1, 3), [])
    """
    if x.dim() != 4 or not x.is_floating_point() or y.dim() not in (3, 4):
        return []
    if y.dim() == 4:
        if y.shape[1] != 1:
            return []
        y = y[:, 0]
    if y.shape[0] != x.shape[0] or tuple(y.shape[1:]) != tuple(x.shape[2:]) or x.shape[1] < 2:
        return []
    classes = _classes(y.detach().cpu())
    if classes is None or int(torch.unique(classes).numel()) < 2:
        return []
    xs = x.detach().cpu().double()
    if not bool(torch.isfinite(xs).all()):
        return []
    height, width = y.shape[1:]
    found: dict[int, tuple[int, float]] = {}
    free = set(range(x.shape[1]))
    for side in WINDOWS:
        r = side // 2
        if height <= 2 * r or width <= 2 * r:
            break
        per_image = (height - 2 * r) * (width - 2 * r)
        images = max(1, min(x.shape[0], MAX_ROWS // per_image))
        windows = torch.nn.functional.unfold(classes[:images, None].double(), side)  # (b, side*side, pixels)
        keys = windows.transpose(1, 2).reshape(-1, side * side).long()
        group, centre = groups(keys), keys[:, side * side // 2]
        for c in sorted(free):
            values = xs[:images, c, r:height - r, r:width - r].reshape(-1)
            yes, chance = determined(keys, values, tests=x.shape[1] * len(WINDOWS), group=group)
            if yes and not determined(centre, values, tests=x.shape[1])[0]:
                found[c] = (side, chance)
            if yes:
                free.discard(c)
    if not free:  # nothing in the input is more than a rendering of the mask
        return []
    return [(c, side, chance) for c, (side, chance) in sorted(found.items())]


def distinct_token_rows(ids: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Optional[tuple]:
    """The distinct samples of token inputs ``ids`` (``(B, T)`` integers) with their classes from ``y``, padding
    (``mask``, or a token ending most rows) set to -1: ``(ids, classes, labels, per_class, tokens, index, keep)``
    (``torch.unique`` of the classes with counts, of the tokens with the inverse, ``keep`` the real tokens); None
    when there are not two classes and a real token."""
    if ids.dim() != 2 or ids.is_floating_point() or ids.is_complex() or y.shape != ids.shape[:1]:
        return None
    classes = _classes(y.detach().cpu())
    if classes is None:
        return None
    used = mask.detach().cpu().bool() if isinstance(mask, torch.Tensor) and mask.shape == ids.shape else None
    rows = max(1, MAX_ROWS // max(ids.shape[1], 1))
    ids, classes = ids.detach().cpu().long()[:rows], classes[:rows]
    used = used[:rows] if used is not None else _not_padding(ids)
    ids = torch.where(used & (ids >= 0), ids, torch.full_like(ids, -1))
    rows = torch.unique(torch.cat([ids, classes[:, None]], 1), dim=0)  # repeated samples are no new evidence
    ids, classes = rows[:, :-1], rows[:, -1]
    labels, per_class = torch.unique(classes, return_counts=True)
    tokens, index = torch.unique(ids, return_inverse=True)
    keep = tokens >= 0
    if labels.numel() < 2 or int(keep.sum()) == 0:
        return None
    return ids, classes, labels, per_class, tokens, index, keep


def label_tokens(ids: torch.Tensor, y: torch.Tensor, mask: Optional[torch.Tensor] = None) -> Optional[dict[int, int]]:
    """``{class: token}`` when token inputs ``ids`` (``(B, T)`` integers) hold, for every class of ``y`` (``(B,)``),
    a token present in exactly the samples of that class, beyond chance, and sitting at the same place from the end
    of every sample's text (the last :data:`TAIL` tokens) while the texts' lengths vary: what a template that
    appends the verbalised label produces. A class token at a fixed place from the start (a synthetic task whose
    class is the first token, a planted motif) is the task, not a leak. ``mask`` (``attention_mask``) leaves
    padding out; without it, a token ending most rows is taken for padding. With ``d`` distinct samples (class sizes ``d_c``) and ``V`` distinct tokens, label
    assignments that some choice of one token per class explains number at most ``V ** C`` out of the
    ``d! / prod(d_c!)`` a shuffle of the labels gives: their ratio must stay below :data:`CHANCE`.

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.arange(32) % 4
    >>> ids = torch.randint(0, 50, (32, 10), generator=g)
    >>> lengths = torch.randint(4, 10, (32, 1), generator=g)
    >>> body = torch.where(torch.arange(11) < lengths, ids.repeat(1, 2)[:, :11], 99)   # 99 pads
    >>> leak = body.clone()
    >>> leak[torch.arange(32), lengths[:, 0]] = 50 + y                # "... [label word] [pad] ..."
    >>> first = torch.cat([50 + y[:, None], body[:, :-1]], 1)         # a task whose class is the first token
    >>> label_tokens(body, y), label_tokens(leak, y), label_tokens(first, y)
    (None, {0: 50, 1: 51, 2: 52, 3: 53}, None)
    """
    prepared = distinct_token_rows(ids, y, mask)
    if prepared is None:
        return None
    ids, classes, labels, per_class, tokens, index, keep = prepared
    d, vocab = ids.shape[0], int(keep.sum())
    log_chance = labels.numel() * math.log(vocab) + log_partition_chance(per_class.tolist())
    if log_chance >= math.log(CHANCE):
        return None
    present = torch.zeros(d, tokens.numel()).scatter_(1, index, 1.0)[:, keep]  # (d, V)
    members = (classes[:, None] == labels[None]).double()  # (d, C)
    # A token whose presence is exactly class c's membership: present in all its d_c samples, absent elsewhere.
    inside = present.double().T @ members  # (V, C): samples of class c holding token v
    total = present.double().sum(0)[:, None]
    exact = (inside == per_class.double()[None]) & (total == per_class.double()[None])
    if not bool(exact.any(0).all()):
        return None
    real = ids >= 0
    if int(torch.unique(real.sum(1)).numel()) < 2:  # equal lengths: the end is a fixed place from the start
        return None
    last = torch.where(real, torch.arange(ids.shape[1]), torch.full_like(ids, -1)).amax(1)
    kept = tokens[keep]
    column = {int(v): j for j, v in enumerate(kept.tolist())}
    for k in range(TAIL):
        at = last - k
        if bool((at < 0).any()):
            break
        tail = ids.gather(1, at[:, None])[:, 0]
        found = {}
        for j, c in enumerate(labels.tolist()):
            values = torch.unique(tail[classes == c]).tolist()
            if len(values) != 1 or values[0] not in column or not bool(exact[column[values[0]], j]):
                break
            found[int(c)] = int(values[0])
        else:
            return found
    return None


def _not_padding(ids: torch.Tensor) -> torch.Tensor:
    """Positions before a row's trailing run of the padding token: the token ending at least half the rows (a batch
    padded to its longest text), if any."""
    values, counts = torch.unique(ids[:, -1], return_counts=True)
    if int(counts.max()) * 2 < ids.shape[0]:
        return torch.ones_like(ids, dtype=torch.bool)
    pad = values[counts.argmax()]
    trailing = (ids == pad).flip(1).long().cumprod(1).flip(1).bool()
    return ~trailing


def next_token_features(ids: torch.Tensor, target: torch.Tensor,
                        features: dict[str, torch.Tensor]) -> list[tuple[str, float]]:
    """Per-position features (``(B, T)``, aligned with the token inputs ``ids``) whose value at ``t`` is one function
    of the target at ``t`` (``target``, ``(B, T)``, negative where ignored) with evidence, but of no window of the
    last :data:`PAST` inputs up to ``t``: ``[(name, chance)]``. A causal flag (the previous token is a space) is
    a function of such a window; one read from the next token is not.

    >>> import torch
    >>> ids = torch.randint(0, 5, (16, 30), generator=torch.Generator().manual_seed(0))
    >>> nxt = torch.cat([ids[:, 1:], ids[:, :1]], 1)
    >>> [n for n, _ in next_token_features(ids[:, :-1], nxt[:, :-1], {"end": (nxt[:, :-1] == 0).float(),
    ...                                                                  "start": (ids[:, :-1] == 0).float()})]
    ['end']
    """
    if ids.dim() != 2 or target.shape != ids.shape:
        return []
    start = max(PAST) - 1
    if ids.shape[1] <= start + 1:
        return []
    rows = max(1, MAX_ROWS // ids.shape[1])
    ids, target = ids.detach().cpu().long()[:rows], target.detach().cpu().long()[:rows]
    used = (target[:, start:] >= 0).reshape(-1)
    pasts = [groups(ids.unfold(1, k, 1)[:, start - k + 1:].reshape(-1, k)[used]) for k in PAST]
    future = target[:, start:].reshape(-1)[used]
    found = []
    tests = max(len(features), 1) * (1 + len(PAST))
    for name, value in features.items():
        if value.dim() < 2 or value.shape[0] < ids.shape[0] or value.shape[1] != ids.shape[1]:
            continue
        v = value.detach().cpu()[: ids.shape[0]].reshape(ids.shape[0], ids.shape[1], -1)
        if v.shape[2] != 1 or v.is_complex():
            continue
        v = v[:, start:, 0].reshape(-1)[used]
        yes, chance = determined(future, v, tests)
        if yes and not any(determined(past, v, tests, group=past)[0] for past in pasts):
            found.append((name, chance))
    return found

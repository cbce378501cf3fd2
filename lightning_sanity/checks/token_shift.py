"""Token inputs distributed differently in training and validation, far beyond sampling noise.

Validation texts that skip a preprocessing step the training texts went through (lower-casing, punctuation
stripping, a different tokenizer) turn a large share of validation tokens into the unknown token, which training
never or rarely sees. The run can know this from the token ids alone.

The unit is the sample, not the token: tokens of one text are not independent (a word repeats within a review), but
the samples of a split are independent draws. For each token id, its **document frequency** (the share of samples
that hold it at a real, unmasked position) in training and in validation are two binomial proportions; under "both
splits come from one distribution" their difference, over its pooled standard error, is a z-score. Over ``V`` token
ids tested at once, a z-score beyond ``sqrt(2 ln(V / alpha))`` (``alpha`` = 1e-3, a Bonferroni bound of the normal
tail) is not sampling noise. A token must also matter: it holds at least :data:`MIN_POSITION_SHARE` of the real
positions of the split where it is frequent (a rare word whose frequency drifts changes neither loss nor verdict),
and that share is at least :data:`POSITION_FACTOR` times its share in the other split: validation texts longer (or
shorter) than training ones raise (or lower) every token's document frequency, not its share of the positions.

Example::

    >>> import torch
    >>> train = torch.zeros(1000, dtype=torch.long); train[5] = 900; train[7] = 950
    >>> val = torch.zeros(1000, dtype=torch.long); val[5] = 180; val[7] = 190; val[1] = 170
    >>> positions = {"train": torch.zeros(1000), "val": torch.zeros(1000)}
    >>> positions["train"][5], positions["train"][7] = 3000.0, 3000.0
    >>> positions["val"][5], positions["val"][7], positions["val"][1] = 600.0, 600.0, 500.0
    >>> judge(train, 1000, val, 200, positions["train"], positions["val"])["token"]
    1
"""

from __future__ import annotations

import math
from typing import Any, Optional

import torch

#: buckets of the document-frequency tables (token id modulo this; exact for vocabularies up to this size).
BUCKETS = 1 << 17
#: share of false alarms allowed over all token ids tested at once.
ALPHA = 1e-3
#: share of a split's real token positions that a shifted token must hold to matter.
MIN_POSITION_SHARE = 0.1
#: factor between the two splits' position shares of a shifted token (a length change leaves them equal).
POSITION_FACTOR = 2.0
#: samples each split needs before a proportion is judged.
MIN_SAMPLES = 30


def presence(ids: torch.Tensor, real: Optional[torch.Tensor],
             into: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(document counts, position counts)``, each ``(BUCKETS,)`` int64, of batch ``ids`` (``(B, T)`` integers):
    how many samples hold each token id at a real position (``real``, a ``(B, T)`` mask, or all), and how many real
    positions it fills, added to ``into`` when given. On the device, no host sync (a sort instead of a ``(B, V)``
    table)."""
    b, t = ids.shape
    token = ids.long().remainder(BUCKETS)
    keep = torch.ones_like(token, dtype=torch.bool) if real is None else real.bool()
    rows = torch.arange(b, device=ids.device)[:, None].expand(b, t)
    key = torch.where(keep, rows * BUCKETS + token, torch.full_like(token, -1)).reshape(-1)
    key, _ = torch.sort(key)
    first = torch.ones_like(key, dtype=torch.bool)
    first[1:] = key[1:] != key[:-1]
    valid = key >= 0
    bucket = key.remainder(BUCKETS)
    if into is None:
        into = (torch.zeros(BUCKETS, dtype=torch.long, device=ids.device),
                torch.zeros(BUCKETS, dtype=torch.long, device=ids.device))
    docs, places = into
    docs.index_add_(0, bucket, (first & valid).long())
    places.index_add_(0, bucket, valid.long())
    return docs, places


def judge(train_docs: torch.Tensor, train_samples: int, val_docs: torch.Tensor, val_samples: int,
          train_places: torch.Tensor, val_places: torch.Tensor,
          ignore: tuple[int, ...] = ()) -> Optional[dict[str, Any]]:
    """The token whose document frequency differs most between the splits, beyond the Bonferroni bound and
    holding :data:`MIN_POSITION_SHARE` of its frequent split's positions; None when none does (or too few samples).

    Returns ``{"token", "z", "bound", "train_share", "val_share", "train_positions", "val_positions"}`` (document
    frequencies as shares of samples, position shares of real positions)."""
    if train_samples < MIN_SAMPLES or val_samples < MIN_SAMPLES:
        return None
    seen = ((train_docs + val_docs) > 0).cpu()
    for token in ignore:
        seen[token % BUCKETS] = False
    ids = seen.nonzero().flatten()  # the ids seen: a few thousand of the table's buckets at most, as a rule
    tested = int(ids.numel())
    if tested == 0:
        return None
    td, vd = train_docs.cpu()[ids].double(), val_docs.cpu()[ids].double()
    tp, vp = train_places.cpu()[ids].double(), val_places.cpu()[ids].double()
    pt, pv = td / train_samples, vd / val_samples
    pooled = (td + vd) / (train_samples + val_samples)
    se = (pooled * (1 - pooled) * (1 / train_samples + 1 / val_samples)).clamp_min(1e-300).sqrt()
    z = (pv - pt).abs() / se
    bound = math.sqrt(2 * math.log(max(tested, 2) / ALPHA))
    t_share = tp / max(float(train_places.sum()), 1.0)
    v_share = vp / max(float(val_places.sum()), 1.0)
    factor = torch.maximum(t_share, v_share) >= POSITION_FACTOR * torch.minimum(t_share, v_share)
    candidates = (z > bound) & (torch.maximum(t_share, v_share) >= MIN_POSITION_SHARE) & factor
    if not bool(candidates.any()):
        return None
    best = int(torch.where(candidates, z, torch.zeros_like(z)).argmax())
    return {"token": int(ids[best]), "z": float(z[best]), "bound": bound, "tested": tested,
            "train_share": float(pt[best]), "val_share": float(pv[best]),
            "train_positions": float(t_share[best]), "val_positions": float(v_share[best])}

"""Token document frequencies of the training and validation inputs, for ``val-divergence``.

Fed by :class:`~lightning_sanity.callbacks.val_divergence.ValDivergence` with the first training epoch's batches
and the first full validation run's (the batches Lightning delivers anyway), counted on the device and read once at
the end of fit; the judgement is :func:`lightning_sanity.checks.token_shift.judge`.

Example::

    >>> import torch
    >>> counts = TokenCounts()
    >>> counts.add({"input_ids": torch.randint(1, 50, (8, 20))}, "train")
    >>> counts.judge() is None  # no validation batch yet
    True
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Optional

import torch

from lightning_sanity.batch import input_of
from lightning_sanity.checks import token_shift as T

log = logging.getLogger(__name__)

#: columns a batch of token ids needs when no ``input_ids`` key names it (shorter integer rows are tabular codes).
MIN_COLUMNS = 16


def token_input(batch: Any) -> Optional[tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """``(ids, real-position mask or None)`` of a batch of token sequences, or None for other inputs."""
    if isinstance(batch, Mapping) and isinstance(batch.get("input_ids"), torch.Tensor):
        ids, mask = batch["input_ids"], batch.get("attention_mask")
    else:
        ids, mask = input_of(batch), None
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.shape[1] < MIN_COLUMNS:
            return None
    if ids.dim() != 2 or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        return None
    if not isinstance(mask, torch.Tensor) or mask.shape != ids.shape:
        mask = None
    return ids, mask


class TokenCounts:
    """Document and position counts per split; ``off`` once an input is not token ids."""

    def __init__(self) -> None:
        self.counts: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.samples = {"train": 0, "val": 0}
        self.ignore: Optional[torch.Tensor] = None  # the first training batch's edge columns (no mask given)
        self.off = False
        self.done: set[str] = set()  # splits whose first pass is complete

    def add(self, batch: Any, split: str) -> None:
        try:
            self._add(batch, split)
        except Exception:  # never lose the run over a diagnostic
            log.debug("val-divergence token counts failed", exc_info=True)
            self.off = True

    def _add(self, batch: Any, split: str) -> None:
        if self.off:
            return
        found = token_input(batch)
        if found is None:
            self.off = True
            self.counts.clear()
            return
        ids, mask = found
        if mask is None and self.ignore is None and split == "train":
            # Padding, BOS/EOS/CLS/SEP fill the edges; their document frequency follows the batch layout.
            self.ignore = torch.stack([ids[:, 0], ids[:, -1]]).detach().clone()
        into = self.counts.get(split)
        self.counts[split] = T.presence(ids.detach(), mask, into)
        self.samples[split] += int(ids.shape[0])

    def judge(self) -> Optional[dict[str, Any]]:
        if self.off or "train" not in self.counts or "val" not in self.counts:
            return None
        ignore = ()
        if self.ignore is not None:  # an id filling half an edge column is padding or a structural token
            for column in self.ignore.cpu():
                mode, count = torch.mode(column).values, int((column == torch.mode(column).values).sum())
                ignore += (int(mode),) if 2 * count >= column.numel() else ()
        (td, tp), (vd, vp) = self.counts["train"], self.counts["val"]
        return T.judge(td, self.samples["train"], vd, self.samples["val"], tp, vp, ignore=ignore)


def report_token_shift(callback: Any, trainer: Any) -> None:
    """The token half of ``val-divergence``: a warning when one token id's document frequency differs between the
    splits far beyond sampling noise (:func:`lightning_sanity.checks.token_shift.judge`)."""
    from lightning_sanity.findings import Severity

    counts = callback._tokens
    try:
        result = counts.judge()
    except Exception:  # the loss verdicts stand
        return
    finally:
        counts.counts.clear()
    if result is None:
        return
    more = "validation" if result["val_share"] > result["train_share"] else "training"
    callback.report(
        trainer, "val-divergence", Severity.WARNING,
        f"Token id {result['token']} is in {result['val_share']:.0%} of the validation samples "
        f"({result['val_positions']:.0%} of their tokens) but {result['train_share']:.0%} of the training samples "
        f"({result['train_positions']:.0%} of their tokens): z = {result['z']:.0f} where sampling noise stays "
        f"below {result['bound']:.1f} over the {result['tested']} token ids seen. The {more} inputs are encoded "
        "differently: a preprocessing step (lower-casing, normalisation, the tokenizer or its vocabulary) applied "
        "to one split only, and the validation loss measures that difference.",
        "Build both splits through the same preprocessing and the same fitted tokenizer (if the token is the "
        "unknown token, the validation texts miss a normalisation the tokenizer's vocabulary was built from).",
        where="validation inputs", at_step=False, key="token-shift",
        data={"pattern": "token-shift", **result},
    )

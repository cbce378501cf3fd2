"""``target-leakage``: one input token stands for every word of a tag class (a tagger's corpus scrubbed with its gold
spans); the glue is :mod:`lightning_sanity.callbacks._tag_placeholders`.

A "PII scrub" that replaces each gold PER or LOC span with a ``[PER]`` / ``[LOC]`` placeholder before tokenizing
(training and validation alike) writes the answer into the input: the token at a position gives away its tag, and
on raw text the placeholders never occur. A token that always carries one tag is no evidence ("paris" is always LOC
in a corpus, "the" always O): the tag determines nothing about the word there. What the scrub gives and nature does
not is the converse: one token id holds (nearly) every position of an entity class, and no position of any other
class. Entity classes are open: they are spread over many words, and Zipf gives the most frequent one a small share.

What the run can know, on the token-level targets ``(B, T)`` aligned with the input ids (``ignore_index`` and
padding left out, distinct samples only):

- *a span tagging task*: one background class (``O``) holds at least half of the supervised positions. A POS tagset
  has no such class, and its closed classes are one word by nature (PTB's ``TO`` is "to", ``,`` is ","), as a
  tagset that spells out its punctuation is;
- *one token for a foreground class*: the most frequent token ``v`` of a non-background class never carries the
  background tag nor a third class. With BIO tags the placeholder covers ``B-PER`` and ``I-PER`` both, and then the
  tag at ``v`` must be one function of whether ``v`` starts its run (B) or continues it (I);
- *the whole span*: no other class continues the covered ones (follows only them or itself): ``#`` is the B- tag of
  every invoice number in a field extractor, ``%`` the I- tag of every percentage, and the span's other words vary;
- *not a slot of the sample's frame*: ``v`` is not at one fixed place from the start or from the end of every text
  holding it (a ``<s>`` tagged ``START``);
- *beyond chance*: under the null, each sample's words of that class are drawn from an open class whose most frequent
  word has a share of at most :data:`TOP_SHARE` (any Zipf law over four words or more). Then ``k`` of the ``n``
  samples holding the class spelling it only with one same token has chance at most ``C(n, k) q^(k - 1)`` (summed
  over the class's words), times the foreground classes scanned: below :data:`CHANCE`. The scrubbed samples give
  ``k = n``; ``n`` of 13 or more suffices for a handful of classes.

Silent: a real or synthetic NER corpus (each class spread over its words), a number span tagger whose numbers are
many words, a POS tagger (no background class), an ``[UNK]`` that also stands for background words. Not told apart:
a span task whose entity class is truly one word (a synthetic generator with a one-name pool, a cue class made only
of "not"); at the first batch such a class is as readable from the token as the placeholder.

Example::

    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> ids = torch.randint(10, 60, (32, 12), generator=g)        # background words
    >>> tags = torch.zeros(32, 12, dtype=torch.long)
    >>> at = torch.randint(0, 12, (32,), generator=g)
    >>> tags[torch.arange(32), at] = 1
    >>> ids[torch.arange(32), at] = torch.randint(60, 90, (32,), generator=g)  # names: an open class
    >>> tag_placeholders(ids, tags)
    []
    >>> scrubbed = torch.where(tags == 1, 5, ids)                 # every name replaced by one [PER] token
    >>> [(p.token, p.classes, p.samples) for p in tag_placeholders(scrubbed, tags)]
    [(5, [1], 32)]
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional

import torch

from lightning_sanity.checks.target_inputs import MAX_CLASSES, MAX_ROWS, _not_padding

#: The level of the test (a permutation test's, as for the label column and the label tokens).
CHANCE = 1e-3
#: The largest share one word holds of an open class under the null: Zipf's law with exponent 1 over ``N`` words
#: gives the first ``1 / H_N``, at most one half from four words on (a real entity class gives its most frequent
#: name a few percent; a synthetic generator draws from pools of several names).
TOP_SHARE = 0.5
#: The share of supervised positions the background class (``O``) holds at least in a span tagging task.
BACKGROUND = 0.5


@dataclasses.dataclass
class Placeholder:
    """A token that stands for the words of one class (or of its B- and I- tags)."""

    token: int
    #: the classes the token covers: one, or the B- then the I- tag of a span class.
    classes: list[int]
    #: distinct samples holding those classes, and those in which the token is the class's only word.
    samples: int
    covered: int
    #: ``log10`` of the chance bound.
    log10_chance: float


def tag_placeholders(ids: torch.Tensor, labels: torch.Tensor, mask: Optional[torch.Tensor] = None,
                     chance: float = CHANCE) -> list[Placeholder]:
    """Tokens of ``ids`` (``(B, T)`` integers) that stand for every word of one foreground class of ``labels``
    (``(B, T)`` classes, negative ones ignored), beyond chance; ``mask`` (``attention_mask``) leaves padding out,
    else a token ending most rows is taken for padding."""
    if (ids.dim() != 2 or labels.shape != ids.shape or ids.is_floating_point() or ids.is_complex()
            or labels.is_floating_point() or labels.is_complex() or ids.shape[0] < 2):
        return []
    rows = max(1, MAX_ROWS // max(ids.shape[1], 1))
    ids, labels = ids.detach().cpu().long()[:rows], labels.detach().cpu().long()[:rows]
    real = (mask.detach().cpu().bool()[:rows] if isinstance(mask, torch.Tensor) and mask.shape[:2] == ids.shape
            else _not_padding(ids))
    real = real & (ids >= 0)
    sup = real & (labels >= 0)
    # repeated samples (an oversampling sampler) are no new evidence
    both = torch.unique(torch.cat([torch.where(real, ids, -1), torch.where(sup, labels, -1)], 1), dim=0)
    ids, labels = both[:, : ids.shape[1]], both[:, ids.shape[1]:]
    real, sup = ids >= 0, labels >= 0
    kept = labels[sup]
    if kept.numel() == 0 or int(kept.max()) >= 4 * MAX_CLASSES:
        return []
    counts = torch.bincount(kept)
    background = int(counts.argmax())
    if int(counts[background]) < BACKGROUND * kept.numel():
        return []
    foreground = [c for c in range(counts.numel()) if c != background and int(counts[c]) > 0]
    before = _previous_tags(labels, sup)
    found: dict[int, Placeholder] = {}
    for c in foreground:
        v = int(torch.mode(ids[sup & (labels == c)]).values)
        if v in found:
            continue
        covers = _covered_classes(ids, labels, sup, v)
        if (covers is None or background in covers or _fixed_slot(ids, real, v)
                or _continued(labels, sup, before, covers, foreground)):
            continue
        in_class = sup & torch.isin(labels, torch.tensor(covers))
        holding = in_class.any(1)
        n = int(holding.sum())
        k = int(((ids == v) | ~in_class).all(1)[holding].sum())
        log_chance = (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                      + (k - 1) * math.log(TOP_SHARE) + math.log(len(foreground)))
        if k >= 1 and log_chance < math.log(chance):
            found[v] = Placeholder(v, covers, n, k, round(log_chance / math.log(10), 1))
    return list(found.values())


def _covered_classes(ids: torch.Tensor, labels: torch.Tensor, sup: torch.Tensor, v: int) -> Optional[list[int]]:
    """The classes token ``v`` carries: one, or two when the tag is one function of whether ``v`` starts its run
    (B-) or continues it (I-), listed B first; None otherwise."""
    at = sup & (ids == v)
    classes = torch.unique(labels[at]).tolist()
    if len(classes) == 1:
        return classes
    if len(classes) != 2:
        return None
    previous = torch.cat([torch.full_like(ids[:, :1], -1), ids[:, :-1]], 1)
    starts = labels[at & (previous != v)].unique().tolist()
    continues = labels[at & (previous == v)].unique().tolist()
    if len(starts) != 1 or len(continues) != 1 or starts == continues:
        return None
    return starts + continues


def _previous_tags(labels: torch.Tensor, sup: torch.Tensor) -> torch.Tensor:
    """The tag of the previous supervised position of each position's row (-1 at the first): subword pieces left
    out with ``ignore_index`` are skipped."""
    place = torch.where(sup, torch.arange(labels.shape[1]).expand_as(labels), -1)
    last = torch.cat([torch.full_like(place[:, :1], -1), place.cummax(1).values[:, :-1]], 1)
    return torch.where(last >= 0, labels.gather(1, last.clamp(min=0)), -1)


def _continued(labels: torch.Tensor, sup: torch.Tensor, before: torch.Tensor, covers: list[int],
               foreground: list[int]) -> bool:
    """Another class continues the covered ones: every one of its positions follows one of them or itself (the I-
    tag of a span whose B- tag the token is, as ``#`` opens an invoice number whose digits vary)."""
    for d in foreground:
        at = sup & (labels == d)
        if d not in covers and bool(torch.isin(before[at], torch.tensor(covers + [d])).all()):
            return True
    return False


def _fixed_slot(ids: torch.Tensor, real: torch.Tensor, v: int) -> bool:
    """``v`` sits at one fixed place from the start, or from the end, of every text holding it (``<s>``, ``</s>``)."""
    at = ids == v
    place = torch.arange(ids.shape[1]).expand_as(ids)
    from_end = torch.where(real, place, -1).amax(1, keepdim=True) - place  # left padding too
    return int(place[at].unique().numel()) == 1 or int(from_end[at].unique().numel()) == 1

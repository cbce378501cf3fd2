"""``target-leakage`` glue for a tagger whose input holds one placeholder token for every word of a tag class (a
corpus scrubbed with its gold spans: :func:`lightning_sanity.checks.tag_placeholders.tag_placeholders`), on the
first training batch; called from :mod:`lightning_sanity.callbacks._target_inputs` for token-level targets aligned
with the input ids.

Usage::

    report_tag_placeholders(callback, trainer, ids, tags, mask)   # True when it reported
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.checks import leakage as L
from lightning_sanity.checks.tag_placeholders import tag_placeholders

CHECK = "target-leakage"
ADVICE = ("Scrub or anonymise the text without the gold annotations (with a separate NER model or rules, applied the "
          "same way to the text the tagger will see in use), or replace each name with a random surrogate of its "
          "type, so that the tagger still has to find the entity from its context; evaluate on raw text.")


def report_tag_placeholders(callback: Any, trainer: Any, ids: torch.Tensor, tags: torch.Tensor,
                            mask: Optional[torch.Tensor]) -> bool:
    """Report the placeholders of token-level targets ``tags`` aligned with ``ids`` (not a language model's)."""
    if (ids.dim() != 2 or tags.shape != ids.shape or ids.is_floating_point() or tags.is_floating_point()
            or L.same_positions(ids, tags) or L.shift_axis(ids, tags) is not None):
        return False
    found = tag_placeholders(ids, tags, mask if isinstance(mask, torch.Tensor) else None)
    callback._ran[CHECK].append("no input token stands for every word of a tag class")
    if not found:
        return False
    callback._found.add(CHECK)
    first = found[0]
    tagged = " and ".join(str(c) for c in first.classes)
    callback.report(
        trainer, CHECK, "warning",
        f"In the first training batch, token {first.token} is the only word of class {tagged} in {first.covered} of "
        f"the {first.samples} distinct samples holding it, and carries no other tag (chance below "
        f"1e{first.log10_chance:.0f} for a class of many words): the corpus replaced that class's words by one "
        "placeholder, as a PII scrub or anonymisation done with the gold spans does, so the tag is read off the "
        "token and the tagger fails on raw text, where the placeholder never occurs.",
        ADVICE, where="input tokens", key="tag-placeholder",
        data={"tokens": {str(p.token): p.classes for p in found}, "samples": first.samples,
              "covered": first.covered, "log10_chance": first.log10_chance},
    )
    return True

"""How findings name the layers they are about: a short list of names, and the module that holds them all.

Example::

    >>> short_list(["encoder.0", "encoder.1", "encoder.2"], limit=2), common_module(["encoder.0", "encoder.2"])
    ('encoder.0, encoder.1, ... (+1 more)', 'encoder')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional


def short_list(names: Sequence[str], limit: int = 6) -> str:
    """``"a, b, c"``, or ``"a, b, ... (+4 more)"`` past ``limit`` names.

    >>> short_list(["a", "b", "c"], limit=2)
    'a, b, ... (+1 more)'
    """
    names = list(names)
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... (+{len(names) - limit} more)"


def common_module(names: Sequence[str]) -> Optional[str]:
    """The deepest module containing every one of ``names`` (dotted), or None when that is the root.

    >>> common_module(["encoder.0", "encoder.2"])
    'encoder'
    >>> common_module(["encoder.0"])
    'encoder.0'
    >>> common_module(["encoder.0", "head"]) is None
    True
    """
    parts = [n.split(".") for n in names]
    if not parts:
        return None
    prefix = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        prefix.append(level[0])
    return ".".join(prefix) or None

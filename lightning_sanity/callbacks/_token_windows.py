"""Edge hashes of token-id windows for ``split-overlap``, gathered as the batches pass (no sync, no second pass).

Each ``(B, T)`` integer batch adds the hashes of its windows' first and last tokens at each length
(:func:`~lightning_sanity.checks.token_windows.edge_hashes`), computed on the device and kept there until read (one
transfer per split). The judgement is :func:`lightning_sanity.checks.token_windows.judge`.

Example::

    >>> import torch
    >>> tokens = TokenWindows()
    >>> tokens.add(torch.randint(0, 9, (4, 64)), "train")
    >>> tokens.add(torch.randint(0, 9, (2, 64)), "val")
    >>> tokens.judge() is None   # fewer validation windows than a share needs
    True
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.callbacks._row_blocks import BlockedRows
from lightning_sanity.checks import token_windows as TW
from lightning_sanity.checks.splits import overlap_severity

#: windows kept per split: beyond, later batches are not added (2 * 125 hashes of 8 bytes each at most: 16 MiB).
MAX_WINDOWS = 8192


class _SplitEdges(BlockedRows):
    """One split's windows, hashed a block at a time: the twenty or so kernels of
    :func:`~lightning_sanity.checks.token_windows.edge_hashes` cost a token model about 0.2 ms a step when taken
    per batch; a step now copies its windows' first and last ``longest`` tokens (all the hashes read)."""

    def __init__(self, longest: int) -> None:
        super().__init__()
        self.longest = longest
        self.parts: list[tuple[torch.Tensor, torch.Tensor]] = []

    def width(self, x: torch.Tensor) -> int:
        return 2 * self.longest

    def fill(self, x: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        edges = (x[:, : self.longest], x[:, -self.longest :])
        return torch.cat(edges, dim=1) if out is None else torch.cat(edges, dim=1, out=out)

    def take(self, rows: torch.Tensor) -> None:
        self.parts.append(TW.edge_hashes(rows, self.longest))


class TokenWindows:
    """Prefix and suffix hashes per split (``"train"``, ``"val"``)."""

    def __init__(self) -> None:
        self._splits: dict[str, _SplitEdges] = {}
        self._count: dict[str, int] = {}
        self._longest = 0
        self.off = False

    def add(self, x: torch.Tensor, split: str) -> None:
        """Take the edges of batch ``x`` when it is ``(B, T)`` token ids; a batch narrower than the first one's
        comparisons (the short last windows of documents, padded to their own batch's longest) is left out."""
        if self.off:
            return
        if x.dim() != 2 or x.is_floating_point() or x.is_complex() or x.dtype == torch.bool or not x.shape[0]:
            self.clear()
            return
        if not self._longest:
            self._longest = TW.max_length(int(x.shape[1]))
        if not self._longest:
            self.clear()
            return
        if x.shape[1] < 2 * self._longest or self._count.get(split, 0) >= MAX_WINDOWS:
            return
        try:
            edges = self._splits.get(split)
            if edges is None:
                edges = self._splits[split] = _SplitEdges(self._longest)
            edges.add(x.detach())
        except Exception:  # noqa: BLE001 - this reading only: the whole-sample fingerprints go on
            self.clear()
            return
        self._count[split] = self._count.get(split, 0) + int(x.shape[0])

    def judge(self) -> Optional[dict[str, Any]]:
        """The verdict of :func:`~lightning_sanity.checks.token_windows.judge`, or None."""
        if self.off or "train" not in self._splits or "val" not in self._splits:
            return None
        hashes = {}
        for split in ("train", "val"):
            edges = self._splits[split]
            edges.close()  # the rows still in the block
            if not edges.parts:
                return None
            hashes[split] = [torch.cat(parts).cpu() for parts in zip(*edges.parts)]
        return TW.judge(*hashes["train"], *hashes["val"])

    def clear(self) -> None:
        self._splits.clear()
        self.off = True


def report_tokens(callback: Any, trainer: Any, threshold: float) -> None:
    """The token-windows half of ``split-overlap``, judged when whole samples showed no overlap: a finding when at
    least ``threshold`` more of the validation windows than chance share their first tokens with a training window's
    last ones and their last tokens with another's first ones, at one overlap length (an error from one half)."""
    tokens = callback._tokens
    try:
        best = tokens.judge()
    except Exception as err:  # the whole-sample verdict stands
        callback.detail(trainer, "split-overlap", f"token windows not compared ({err!r})")
        return
    finally:
        tokens.clear()
    if best is None:
        return
    excess = best["both"] - best["chance"]
    figures = (f"{best['before']:.0%} of {best['windows']} validation windows begin with the last {best['length']} "
               f"tokens of a training window and {best['after']:.0%} end with the first {best['length']} of one (at "
               f"any other length at most {best['chance']:.0%})")
    callback.detail(trainer, "split-overlap", f"token windows: {figures}")
    if excess < threshold:
        return
    severity = overlap_severity(excess, threshold)
    callback.report(
        trainer, "split-overlap", severity,
        f"Validation windows overlap training windows of the same documents: {figures}. Long documents were cut "
        f"into overlapping windows (a stride of {best['length']} tokens, as `return_overflowing_tokens=True` makes) "
        "and then split at random: each validation window's neighbours are in training, and validation measures "
        "memory of the documents, not generalisation to new ones.",
        "Split the documents first, then tokenise each split into windows (or keep every window of a document in "
        "one split, e.g. group by `overflow_to_sample_mapping`).",
        where="validation data", at_step=False, key="token-windows",
        data={"overlap_tokens": best["length"], "earlier_share": best["before"], "later_share": best["after"],
              "both_sides_share": best["both"], "chance_share": best["chance"],
              "validation_windows": best["windows"]},
    )

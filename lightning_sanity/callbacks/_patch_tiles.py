"""Tile hashes of image patches for ``split-overlap``, gathered as the batches pass (no sync, no second pass).

Training batches add the tiles of a grid (a few of their patches each), validation batches the tiles at every
position; both are kept on the device until judged (one transfer per split). The judgement is
:func:`lightning_sanity.checks.patch_overlap.judge`.

Example::

    >>> import torch
    >>> tiles = PatchTiles()
    >>> tiles.add(torch.rand(4, 1, 16, 16), "train")
    >>> tiles.add(torch.rand(2, 1, 16, 16), "val")
    >>> tiles.judge()["any"]
    0.0
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from lightning_sanity.checks import patch_overlap as P
from lightning_sanity.checks.splits import overlap_severity

#: training patches read per batch: each validation patch of a sliding window has many training neighbours, a
#: quarter of a 64-patch batch finds them, and the first epoch's per-step cost stays a few small kernels.
TRAIN_PER_BATCH = 16
#: patches kept per split: the validation patches cost ``k^2`` hashes per pixel (and their transposes as many); 64
#: give the share to about 6 points, against a sliding window's 35 % or more.
MAX_TRAIN, MAX_VAL = 1 << 13, 64


class PatchTiles:
    """Tile hashes per split (``"train"``, ``"val"``) of image patches of one shape."""

    def __init__(self) -> None:
        self._store: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "transposed": []}
        self._count = {"train": 0, "val": 0}
        self._shape: Optional[tuple[int, ...]] = None
        self.off = False

    def add(self, x: torch.Tensor, split: str) -> None:
        """Hash the tiles of batch ``x``; inputs that are no image patches, or a shape that changes between batches,
        turn the reading off."""
        if self.off:
            return
        if self._shape is None:
            if not P.readable(x):
                self.clear()
                return
            self._shape = tuple(x.shape[1:])
        if tuple(x.shape[1:]) != self._shape:
            self.clear()
            return
        room = (MAX_TRAIN if split == "train" else MAX_VAL) - self._count[split]
        take = min(room, TRAIN_PER_BATCH) if split == "train" else room
        if take <= 0:
            return
        rows = x if take >= x.shape[0] else x[:take]
        self._store[split].append(P.tile_hashes(rows, grid=split == "train"))
        if split == "val":  # the chance of objects that repeat (see the check)
            self._store["transposed"].append(P.tile_hashes(rows.transpose(2, 3), grid=False))
        self._count[split] += int(rows.shape[0])

    def judge(self) -> Optional[dict[str, Any]]:
        """The verdict of :func:`~lightning_sanity.checks.patch_overlap.judge`, or ``None``."""
        if self.off or not self._store["train"] or not self._store["val"]:
            return None
        train, val, transposed = (torch.cat(self._store[split]) for split in ("train", "val", "transposed"))
        return P.judge(train, val, P.tile_size(self._shape[0]), transposed)

    def clear(self) -> None:
        self._store = {"train": [], "val": [], "transposed": []}
        self.off = True


def judge_patches(callback: Any, text: str) -> tuple[Optional[dict[str, Any]], str]:
    """The patches half of ``split-overlap``, judged when whole samples showed no overlap: the verdict (or None) and
    the detail ``text`` with its figures appended."""
    tiles = callback._patches
    try:
        result = tiles.judge()
    except Exception as err:  # the whole-sample verdict stands
        return None, f"{text}; patches not compared ({err!r})"
    finally:
        tiles.clear()
    if result is None:
        return None, text
    result["figures"] = (f"{result['any']:.0%} of {result['patches']} validation patches share a region with a "
                         f"training patch, shifted; {result['both']:.0%} have such training neighbours on both sides, "
                         f"against {result['chance']:.0%} of the same patches transposed")
    return result, f"{text}; {result['figures']}"


def report_patches(callback: Any, trainer: Any, text: str, result: Optional[dict[str, Any]],
                   threshold: float) -> None:
    """A finding when the validation patches that overlap training patches from both sides exceed the transposed ones
    by ``threshold``."""
    if result is None or result["both"] - result["chance"] < threshold:
        return
    callback.detail(trainer, "split-overlap", text)
    callback.report(
        trainer, "split-overlap", overlap_severity(result["both"] - result["chance"], threshold),
        f"Validation patches overlap training patches: {result['figures']} (the same pixels, shifted; patches split "
        "by region overlap at the boundary only, from one side). Overlapping patches were cut from each image first "
        "and then split at random: each validation patch's neighbours, from the same image, are in training, and "
        "validation measures memory of the images, not generalisation to new ones.",
        "Split the source images (scenes, slides, mosaics) first, then cut each split into patches; or split each "
        "image by region, with a gap of one patch between the parts.",
        where="validation data", at_step=False, key="patches",
        data={"overlap_share": result["any"], "both_sides_share": result["both"], "chance_share": result["chance"],
              "validation_patches": result["patches"]},
    )

"""Labelled charts for TensorBoard's IMAGES tab: a heat map or scatter with a title, axis labels, tick values and a
colour bar, drawn in numpy with pre-rendered glyphs (:mod:`lightning_sanity._glyphs`): no Pillow to import.

Every chart has the same size (:data:`IMAGE_SIZE`), whatever the number of samples, classes or snapshots, so a
3-class model does not give a tall thin strip nor a 1000-class model a gigantic image, and TensorBoard's step
slider flips between pictures that line up:

- rows (samples) beyond :data:`PLOT_H` are thinned to evenly spaced samples, and the axis label says how many of
  how many are shown;
- columns beyond :data:`PLOT_W` are bucketed (classes: the largest value of each bucket, so a confident class stays
  visible) or thinned (snapshots), and the axis label says so;
- the cells are then stretched (nearest neighbour, no blur) to the :data:`PLOT_W` x :data:`PLOT_H` plot area.

Drawing one chart takes about 1 ms on a CPU (the text frame is cached while its labels stay the same), and the
writer's PNG encoding about as much again; the predictions callback draws two or three per snapshot. The text
used to go through Pillow, whose import and font loading cost about 20 ms at the first chart of every process.

>>> img = heatmap(torch.rand(64, 3), title="class probabilities", x_label="class", y_label="sample")
>>> tuple(img.shape) == (3, IMAGE_SIZE[1], IMAGE_SIZE[0]), img.dtype
(True, torch.uint8)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Optional

import numpy as np
import torch

from lightning_sanity._glyphs import font_of
from lightning_sanity.colormap import colormap, scatter_image

#: the plot area of every chart, in pixels (width, height), and the margins around it that hold the text. The
#: whole chart (338 x 252) fits TensorBoard's image card (about 340 pixels wide) at its own size: no blurry text.
PLOT_W, PLOT_H = 224, 192
LEFT, TOP, RIGHT, BOTTOM = 56, 26, 58, 34
#: (width, height) of every chart.
IMAGE_SIZE = (LEFT + PLOT_W + RIGHT, TOP + PLOT_H + BOTTOM)
#: the colour bar: a gap after the plot, then its width.
_BAR_GAP, _BAR_W = 8, 12
#: a categorical axis with at most this many columns gets a tick per column.
_EVERY_TICK = 16
_BACKGROUND = (255, 255, 255)
_INK = (20, 20, 20)


def plot_area(pixels: Any) -> Any:
    """The plot area (no margins) of a chart given as an (H, W, ...) array, e.g. a decoded PNG.

    >>> plot_area(torch.zeros(IMAGE_SIZE[1], IMAGE_SIZE[0])).shape
    torch.Size([192, 224])
    """
    return pixels[TOP:TOP + PLOT_H, LEFT:LEFT + PLOT_W]


def heatmap(values: torch.Tensor, *, title: str, x_label: str, y_label: str,
            x_ticks: Optional[tuple[str, str]] = None, columns: str = "max",
            scale: tuple[float, float] = (0.0, 1.0)) -> torch.Tensor:
    """A (rows x columns) matrix of values in ``scale`` as a labelled viridis heat map, ``(3, H, W)`` uint8.

    ``columns`` says how to fit more than :data:`PLOT_W` columns: ``"max"`` (bucket, keep each bucket's largest
    value: classes) or ``"pick"`` (evenly spaced columns: snapshots in time). ``x_ticks`` labels the first and
    last column (default: their indices). NaN cells are black.

    >>> heatmap(torch.rand(8, 1000), title="t", x_label="class", y_label="sample").shape
    torch.Size([3, 252, 338])
    """
    if columns not in ("max", "pick"):
        raise ValueError(f"heatmap: `columns` must be 'max' or 'pick', got {columns!r}")
    # numpy rather than torch: no intra-op thread pool to wake for a few thousand numbers.
    v = values.detach().float().cpu().reshape(values.shape[0], -1).numpy()
    rows, cols = v.shape
    y_note = ""
    if rows > PLOT_H:
        v = v[_evenly(rows, PLOT_H)]
        y_note = f" ({PLOT_H} of {rows})"
    x_note = ""
    if cols > PLOT_W:
        if columns == "max":
            size = math.ceil(cols / PLOT_W)
            padded = np.full((v.shape[0], math.ceil(cols / size) * size), -np.inf, dtype=np.float32)
            padded[:, :cols] = np.nan_to_num(v, nan=-np.inf)
            v = padded.reshape(v.shape[0], -1, size).max(-1)
            v[np.isneginf(v)] = np.nan
            x_note = f" (max of each {size})"
        else:
            v = v[:, _evenly(cols, PLOT_W)]
            x_note = f" ({PLOT_W} of {cols})"
    lo, hi = scale
    plot = _stretch(_colour((v - lo) / (hi - lo if hi > lo else 1.0)))
    drawn_rows, drawn_cols = v.shape
    if x_ticks is None and drawn_cols == cols <= _EVERY_TICK:
        x_at = tuple(((i + 0.5) / cols, str(i)) for i in range(cols))  # few columns: name each one
    else:
        first, last = x_ticks if x_ticks is not None else ("0", str(cols - 1))
        x_at = ((0.5 / drawn_cols, first), (1 - 0.5 / drawn_cols, last)) if drawn_cols > 1 else ((0.5, last),)
    y_at = ((0.5 / drawn_rows, "0"), (1 - 0.5 / drawn_rows, str(rows - 1))) if drawn_rows > 1 else ((0.5, "0"),)
    return _compose(plot, title, x_label + x_note, y_label + y_note, x_at, y_at, (0.0, 1.0),
                    (f"{lo:g}", f"{hi:g}"))


def probabilities_chart(probs: torch.Tensor, kind: str) -> torch.Tensor:
    """The fixed batch's current probabilities: samples x classes (binary: labels; sequence: tokens' target)."""
    what = {"binary": ("label", "P(label) per sample"), "sequence": ("position", "P(target token) per sample")}
    x_label, title = what.get(kind, ("class", "class probabilities per sample"))
    return heatmap(probs, title=title, x_label=x_label, y_label="sample", columns="max")


def history_chart(columns: Sequence[torch.Tensor], steps: Sequence[int]) -> torch.Tensor:
    """Each sample's probability of its true class at each snapshot: samples x snapshots, steps on the x axis.

    ``steps[i]`` is the training step of ``columns[i]``; beyond :data:`PLOT_W` snapshots, evenly spaced ones
    (always the first and the last) are drawn.
    """
    x_label = "snapshot"
    if len(columns) > PLOT_W:
        pick = _evenly(len(columns), PLOT_W).tolist()
        x_label = f"snapshot ({PLOT_W} of {len(columns)})"
        columns, steps = [columns[i] for i in pick], [steps[i] for i in pick]
    values = torch.from_numpy(np.stack([c.detach().float().cpu().reshape(-1).numpy() for c in columns], axis=1))
    ticks = (f"step {steps[0]}", f"step {steps[-1]}") if len(steps) else None
    return heatmap(values, title="P(true class) per sample over training", x_label=x_label,
                   y_label="sample", x_ticks=ticks, columns="pick")


def scatter_chart(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Prediction (up) against target (right), labelled with the value range and samples per pixel."""
    size = 64
    picture = scatter_image(prediction, target, size=size)
    p = prediction.detach().float().cpu().flatten()
    t = target.detach().float().cpu().flatten()
    keep = torch.isfinite(p) & torch.isfinite(t)
    p, t = p[keep], t[keep]
    lo = float(torch.minimum(p.min(), t.min())) if p.numel() else 0.0
    hi = float(torch.maximum(p.max(), t.max())) if p.numel() else 1.0
    span = hi - lo if hi > lo else 1.0
    most = 1
    if p.numel():
        cells = ((t - lo) / span * (size - 1)).round().long() * size + ((p - lo) / span * (size - 1)).round().long()
        most = int(torch.bincount(cells).max())
    # The scatter's shades run from 0.35 (one sample) to 1.0 (the fullest pixel) of the colour map.
    picture = (picture.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return _compose(_stretch(picture), "prediction vs target, colour: samples per pixel", "target", "prediction",
                    ((0.0, f"{lo:.3g}"), (1.0, f"{hi:.3g}")), ((0.0, f"{hi:.3g}"), (1.0, f"{lo:.3g}")),
                    (0.35, 1.0), ("1", f"{most}"))


# ------------------------------------------------------------------------------------------------ drawing


def _evenly(n: int, k: int) -> np.ndarray:
    return np.linspace(0, n - 1, k).round().astype(np.int64)


# The anchors of the suite's colour map (viridis), read once from it: the same colours in every image.
_ANCHORS = colormap(torch.linspace(0, 1, 5)[None]).numpy()[:, 0].T.astype(np.float32) * 255


def _colour(values: np.ndarray) -> np.ndarray:
    """:func:`~lightning_sanity.colormap.colormap` in numpy: (h, w) in [0, 1] -> (h, w, 3) uint8."""
    nan = np.isnan(values)
    x = np.clip(np.nan_to_num(values), 0, 1) * (len(_ANCHORS) - 1)
    lo = np.minimum(np.floor(x).astype(np.int64), len(_ANCHORS) - 2)
    frac = (x - lo)[..., None]
    rgb = _ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac
    rgb[nan] = 0
    return rgb.round().astype(np.uint8)


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """Nearest-neighbour resize of an (h, w, 3) uint8 image to the plot area (PLOT_H, PLOT_W, 3)."""
    h, w = rgb.shape[:2]
    return rgb[np.arange(PLOT_H) * h // PLOT_H][:, np.arange(PLOT_W) * w // PLOT_W]


Ticks = tuple[tuple[float, str], ...]  # (where along the axis, 0..1; text)


def _compose(plot: np.ndarray, title: str, x_label: str, y_label: str, x_ticks: Ticks, y_ticks: Ticks, bar: tuple[float, float], bar_ticks: tuple[str, str]) -> torch.Tensor:
    """The plot in its frame of text and colour bar (``bar``: the part of the colour map it spans), (3, H, W)."""
    canvas = _frame(title, x_label, y_label, x_ticks, y_ticks, bar, bar_ticks).copy()
    canvas[TOP:TOP + PLOT_H, LEFT:LEFT + PLOT_W] = plot
    return torch.from_numpy(np.ascontiguousarray(canvas.transpose(2, 0, 1)))


@lru_cache(maxsize=16)
def _frame(title: str, x_label: str, y_label: str, x_ticks: Ticks, y_ticks: Ticks,
           bar: tuple[float, float], bar_ticks: tuple[str, str]) -> np.ndarray:
    """A white (H, W, 3) canvas with the title, axis labels, ticks and colour bar; the plot area left blank.

    Cached: the labels of a chart rarely change between snapshots.
    """
    width, height = IMAGE_SIZE
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    bar_x = LEFT + PLOT_W + _BAR_GAP
    ramp = np.repeat(np.linspace(bar[1], bar[0], PLOT_H)[:, None], _BAR_W, axis=1)
    canvas[TOP:TOP + PLOT_H, bar_x:bar_x + _BAR_W] = _colour(ramp)
    small, big = font_of(12), font_of(13)
    _text(canvas, (LEFT + PLOT_W / 2, TOP / 2), _fit(title, big, width - 8), big, "mm")
    _text(canvas, (LEFT + PLOT_W / 2, height - 9), x_label, small, "mm")
    for at, text in x_ticks:
        _text(canvas, (LEFT + at * PLOT_W, TOP + PLOT_H + 3), text, small, "ma")
    for at, text in y_ticks:
        _text(canvas, (LEFT - 4, TOP + at * PLOT_H), text, small, "rm")
    _text(canvas, (bar_x + _BAR_W + 3, TOP), bar_ticks[1], small, "la")
    _text(canvas, (bar_x + _BAR_W + 3, TOP + PLOT_H), bar_ticks[0], small, "ld")
    # The y label reads bottom to top, as on a printed chart: drawn on its own strip, turned a quarter.
    label = np.full((16, PLOT_H, 3), 255, dtype=np.uint8)
    _text(label, (PLOT_H / 2, 8), _fit(y_label, small, PLOT_H), small, "mm")
    canvas[TOP:TOP + PLOT_H, 4:20] = np.rot90(label)
    canvas.flags.writeable = False
    return canvas


def _text(canvas: np.ndarray, xy: tuple[float, float], text: str, font: Any, anchor: str) -> None:
    """Draw ``text`` with ``anchor`` (horizontal l/m/r, vertical a/m/d: top, middle, bottom) at ``xy``.

    Placed from the text's measured box, kept on the canvas near an edge.
    """
    left, top, right, bottom = font.bbox(text)
    x = xy[0] - {"l": left, "m": (left + right) / 2, "r": right}[anchor[0]]
    y = xy[1] - {"a": top, "m": (top + bottom) / 2, "d": bottom}[anchor[1]]
    x = min(max(x, 1 - left), canvas.shape[1] - 1 - right)  # a tick label near an edge stays on the canvas
    font.draw(canvas, (round(x), round(y)), text, _INK)


def _fit(text: str, font: Any, width: int) -> str:
    """``text``, cut with an ellipsis where it is wider than ``width`` pixels."""
    if font.length(text) <= width:
        return text
    while text and font.length(text + "...") > width:
        text = text[:-1]
    return text + "..."

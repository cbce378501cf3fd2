"""The suite's TensorBoard tag scheme, writer access and custom-scalars layout, in one place.

Every tag the suite writes starts with ``sanity/`` and then names the check family, so the suite's charts sit
together in TensorBoard and never collide with the user's own tags:

- ``sanity/summary``: the summary as markdown (text dashboard), written at the end of fit.
- ``sanity/<quantity>/<name>``: scalars, histograms and images of the check families; each family documents
  its own tags in its callback's docstring.

The custom-scalars layout ("CUSTOM SCALARS" tab) puts one chart per quantity with a line per layer, in sections
named ``sanity: <family>`` (``sanity: norms``, ``sanity: activations``, ``sanity: batchnorm``,
``sanity: predictions``). Callbacks declare their charts with :func:`add_layout_chart`, but a chart enters the
written layout only once a scalar it plots has been logged through :func:`log_scalars`, so no chart is drawn
empty (a ReLU-only model has no "saturated outputs per layer" chart). The layout is rewritten when a chart gains
its first data (a handful of times per run, at the first logging steps); TensorBoard shows the latest one.
"""

from __future__ import annotations

import re
import struct
import time
import weakref
import zlib
from typing import Any

PREFIX = "sanity"
SUMMARY_TAG = f"{PREFIX}/summary"
#: every custom-scalars section is named ``SECTION_PREFIX + family``.
SECTION_PREFIX = f"{PREFIX}: "


class _Layout:
    """One trainer's declared charts, the scalar tags logged so far, and the layout last written."""

    def __init__(self) -> None:
        self.declared: dict[str, dict[str, list]] = {}
        self.logged: set[str] = set()
        self.written: dict[str, dict[str, list]] = {}


_LAYOUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def tag(*parts: str) -> str:
    """``tag("grad_norm", "encoder.0")`` -> ``"sanity/grad_norm/encoder.0"``."""
    return "/".join((PREFIX, *parts))


def writers(trainer: Any) -> list[Any]:
    """The ``SummaryWriter`` of every TensorBoard logger of ``trainer``, on global rank 0 only."""
    from lightning.pytorch.loggers import TensorBoardLogger

    if not trainer.is_global_zero:
        return []
    return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]


def log_scalars(trainer: Any, metrics: dict[str, float], step: int) -> None:
    """Write plain-float scalars to every logger of ``trainer`` (TensorBoard, CSV, ...), on global rank 0.

    Gather the values into one tensor and call ``.tolist()`` once before calling this: one host sync per
    logging step, not one per value.
    """
    if not trainer.is_global_zero or not metrics:
        return
    for logger in trainer.loggers:
        if not _write_scalars(logger, metrics, step):
            logger.log_metrics(metrics, step=step)
    state = _LAYOUTS.setdefault(trainer, _Layout())
    before = len(state.logged)
    state.logged.update(metrics)
    if len(state.logged) != before and state.declared:  # a new tag: a declared chart may have its first data
        write_layout(trainer)


def _write_scalars(logger: Any, metrics: dict[str, float], step: int) -> bool:
    """Write ``metrics`` to a plain ``TensorBoardLogger`` as ONE event holding every scalar; False: not done.

    ``log_metrics`` writes one event per scalar, and each goes through the event writer's queue, waking its
    thread: on a norm chart point with a few dozen layers that cost more than everything else in it. TensorBoard
    reads the values of one event exactly as those of separate events. Anything else (another logger, a
    subclass, a prefix, a value that is not a plain number) takes the logger's own ``log_metrics``.
    """
    from lightning.pytorch.loggers import TensorBoardLogger

    if type(logger) is not TensorBoardLogger or getattr(logger, "_prefix", "") or not all(
            type(v) in (float, int) for v in metrics.values()):
        return False
    try:
        from tensorboard.compat.proto.summary_pb2 import Summary

        summary = Summary(value=[Summary.Value(tag=k, simple_value=float(v)) for k, v in metrics.items()])
        logger.experiment._get_file_writer().add_summary(summary, step)
    except Exception:  # a writer without this layout: the logger's own way
        return False
    return True


def add_layout_chart(trainer: Any, section: str, title: str, tag_regex: str) -> None:
    """Declare a custom-scalars chart: ``title`` in section ``sanity: <section>`` plots every tag matching
    ``tag_regex``; it is written once a scalar logged with :func:`log_scalars` matches.

    ``section`` may be given with or without the ``sanity: `` prefix; the layout always carries it.
    """
    if not section.startswith(SECTION_PREFIX):
        section = SECTION_PREFIX + section
    state = _LAYOUTS.setdefault(trainer, _Layout())
    state.declared.setdefault(section, {})[title] = ["Multiline", [tag_regex]]
    if state.logged:
        write_layout(trainer)


def layout(trainer: Any) -> dict[str, dict[str, list]]:
    """The custom-scalars layout of ``trainer``: the declared charts that have data, in sections that have any.

    TensorBoard matches a chart's regex anywhere in a tag (JavaScript's ``RegExp.test``), as ``re.search`` does.
    """
    state = _LAYOUTS.get(trainer)
    if state is None:
        return {}
    kept: dict[str, dict[str, list]] = {}
    for section, charts in state.declared.items():
        for title, (kind, regexes) in charts.items():
            if any(re.search(r, t) for r in regexes for t in state.logged):
                kept.setdefault(section, {})[title] = [kind, list(regexes)]
    return kept


def write_layout(trainer: Any) -> bool:
    """Write the layout (charts with data only) to every TensorBoard logger where it changed since the last
    write; False when it is empty."""
    charts = layout(trainer)
    if not charts:
        return False
    state = _LAYOUTS[trainer]
    if charts != state.written:
        for writer in writers(trainer):
            writer.add_custom_scalars(charts)
        state.written = charts
    return True


def add_image(writer: Any, tag: str, image: Any, step: int) -> None:
    """Write a ``(3, H, W)`` uint8 image to ``writer`` (a ``SummaryWriter``) as a PNG.

    The same event as ``writer.add_image(tag, image, step, dataformats="CHW")``, encoded here at zlib level 1
    without PNG filters: the suite's charts are flat colour fields that compress well anyway, and this takes about
    1 ms per chart instead of about 10 ms through Pillow's adaptive filters and torch's float rescaling.
    """
    file_writer = getattr(writer, "_get_file_writer", None)
    if file_writer is None:  # not torch's SummaryWriter: its own public path
        writer.add_image(tag, image, global_step=step, dataformats="CHW")
        return
    from tensorboard.compat.proto.summary_pb2 import Summary

    channels, height, width = image.shape
    png = png_bytes(image)
    value = Summary.Value(tag=tag, image=Summary.Image(height=height, width=width, colorspace=channels,
                                                      encoded_image_string=png))
    file_writer().add_summary(Summary(value=[value]), step, time.time())


def png_bytes(image: Any, level: int = 1) -> bytes:
    """A ``(3, H, W)`` uint8 tensor or array as the bytes of an RGB PNG file.

    >>> import torch
    >>> png_bytes(torch.zeros(3, 2, 2, dtype=torch.uint8))[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    import numpy as np

    pixels = np.asarray(image, dtype=np.uint8)
    channels, height, width = pixels.shape
    if channels != 3:
        raise ValueError(f"png_bytes: `image` must have 3 channels (RGB), got shape {pixels.shape}")
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # a leading 0 per row: PNG filter "None"
    rows[:, 1:] = pixels.transpose(1, 2, 0).reshape(height, -1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bits per channel, truecolour
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows.tobytes(), level))
            + chunk(b"IEND", b""))

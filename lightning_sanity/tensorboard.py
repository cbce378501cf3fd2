"""The suite's TensorBoard tag scheme, writer access and custom-scalars layout, in one place.

Every tag the suite writes starts with ``sanity/`` and then names the check family, so the suite's charts sit
together in TensorBoard and never collide with the user's own tags:

- ``sanity/summary``: the summary as markdown (text dashboard), written at the end of fit.
- ``sanity/<quantity>/<name>``: scalars, histograms and images of the check families; each family documents
  its own tags in its callback's docstring.

The custom-scalars layout ("CUSTOM SCALARS" tab) puts one chart per quantity with a line per layer. Callbacks
add their charts with :func:`add_layout_chart`; the summary callback writes the combined layout.
"""

from __future__ import annotations

import weakref
from typing import Any

PREFIX = "sanity"
SUMMARY_TAG = f"{PREFIX}/summary"

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
        logger.log_metrics(metrics, step=step)


def add_layout_chart(trainer: Any, category: str, title: str, tag_regex: str) -> None:
    """Register a custom-scalars chart: ``title`` in ``category`` plots every tag matching ``tag_regex``."""
    _LAYOUTS.setdefault(trainer, {}).setdefault(category, {})[title] = ["Multiline", [tag_regex]]


def write_layout(trainer: Any) -> bool:
    """Write the combined custom-scalars layout to every TensorBoard logger; False when there is none."""
    layout = _LAYOUTS.get(trainer)
    if not layout:
        return False
    for writer in writers(trainer):
        writer.add_custom_scalars(layout)
    return True

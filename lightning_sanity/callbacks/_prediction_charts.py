"""The ``sanity/predictions/*`` TensorBoard charts of
:class:`~lightning_sanity.callbacks.predictions.PredictionDynamics` (the tags are listed in its docstring): the
custom-scalars layout, and per snapshot the scalars, images and histograms of the fixed batch (images and
histograms under the suite's periodic budget).
"""

from __future__ import annotations

import math
from typing import Optional

import lightning.pytorch as pl
import torch

from lightning_sanity import images as charts
from lightning_sanity import cost, tensorboard

#: the samples x snapshots image is rewritten at every snapshot up to this many, then at epoch ends only.
_TIME_IMAGE_EVERY_SNAPSHOT = 64
#: the assumed cost of a snapshot's images and histograms before the first one is measured (about 20 ms on a CPU).
_FIRST_DRAWING_SECONDS = 0.02
#: most values that go into one TensorBoard histogram: the output's are taken at an even stride beyond that.
_MAX_HISTOGRAM_VALUES = 1 << 16


def add_prediction_layout(trainer: "pl.Trainer") -> None:
    """Group the fixed batch's scalars in TensorBoard's custom-scalars tab."""
    tensorboard.add_layout_chart(trainer, "sanity: predictions", "fixed-batch loss and accuracy",
                                 r"sanity/predictions/(loss|accuracy)$")
    tensorboard.add_layout_chart(trainer, "sanity: predictions", "change since the last snapshot",
                                 r"sanity/predictions/(mean_change|flip_fraction)$")


class PredictionCharts:
    """Writes each snapshot's scalars at once; its images and histograms, which judge nothing, while the periodic
    budget allows (:func:`lightning_sanity.cost.periodic_allowed`), else the latest snapshot's are kept and
    drawn by :meth:`finish` at the end of fit, so every run ends with a picture."""

    def __init__(self) -> None:
        self.pending: Optional[tuple] = None

    def write(self, trainer: "pl.Trainer", kind: str, out: torch.Tensor, probs: torch.Tensor,
              targets: Optional[torch.Tensor], p_true: Optional[torch.Tensor], scalars: dict[str, float], step: int,
              epoch_end: bool, history: dict[str, list]) -> None:
        """One snapshot's charts; ``history`` holds the columns of every snapshot so far, this one included."""
        tensorboard.log_scalars(trainer, {tensorboard.tag("predictions", k): v for k, v in scalars.items()
                                          if math.isfinite(v)}, step=step)
        # The outputs' histogram takes at most _MAX_HISTOGRAM_VALUES of them, at an even stride (no RNG drawn, the
        # same values each snapshot): only those are kept until the drawing, not a whole wide output.
        flat = out.detach().flatten()
        if flat.numel() > _MAX_HISTOGRAM_VALUES:
            flat = flat[:: -(-flat.numel() // _MAX_HISTOGRAM_VALUES)].clone()
        self.pending = (kind, flat, probs, targets, p_true, step, epoch_end, history)
        # Before the first drawing its cost is unknown: assume what a drawing takes on a CPU (images and
        # histograms, whatever the model), so that a short run does not pay for one early on; the end of fit
        # draws the latest snapshot's anyway (finish()).
        if cost.periodic_allowed(trainer, "charts", taken=0, prior=_FIRST_DRAWING_SECONDS):
            self.draw(trainer)

    def finish(self, trainer: "pl.Trainer") -> None:
        """Draw the latest snapshot's images and histograms if they were left out (end of fit)."""
        self.draw(trainer, final=True)

    def draw(self, trainer: "pl.Trainer", final: bool = False) -> None:
        if self.pending is None:
            return
        kind, out, probs, targets, p_true, step, epoch_end, history = self.pending
        self.pending = None
        writers = tensorboard.writers(trainer)
        if writers:
            with cost.periodic("charts"):
                _draw(writers, kind, out, probs, targets, p_true, step, epoch_end or final, history)


def _draw(writers: list, kind: str, out: torch.Tensor, probs: torch.Tensor, targets: Optional[torch.Tensor],
          p_true: Optional[torch.Tensor], step: int, epoch_end: bool, history: dict[str, list]) -> None:
    t_cpu = targets.cpu() if targets is not None else None
    images: dict[str, torch.Tensor] = {}
    histograms: dict[str, torch.Tensor] = {"outputs": out.float().cpu()}  # already thinned by `write`
    if kind in ("classification", "binary"):
        images["probabilities"] = charts.probabilities_chart(probs, kind)
    elif kind == "sequence" and probs is not None:  # each token's probability of its target (NaN: ignored)
        images["probabilities"] = charts.probabilities_chart(probs, kind)
    if p_true is not None:
        histograms["true_class_probability"] = p_true.cpu()
        columns = history["true_class_probability"]
        if len(columns) <= _TIME_IMAGE_EVERY_SNAPSHOT or epoch_end:
            images["true_class_over_time"] = charts.history_chart(columns, history["step"][-len(columns):])
    if kind == "regression" and t_cpu is not None:
        images["prediction_vs_target"] = charts.scatter_chart(probs, t_cpu)
        histograms["residuals"] = (probs - t_cpu).flatten()
    for writer in writers:
        for name, image in images.items():
            tensorboard.add_image(writer, tensorboard.tag("predictions", name), image, step)
        for name, values in histograms.items():
            values = values[torch.isfinite(values)]
            if values.numel():
                writer.add_histogram(tensorboard.tag("predictions", name), values, global_step=step)

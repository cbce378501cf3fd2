"""Dashboards for people: the images are labelled charts of a readable shape for any number of classes, read back
from the event file with TensorBoard's own reader, and the custom-scalars layout has one naming scheme and no empty
chart."""

import io
import re
import sys

import lightning as L
import numpy as np
import pytest
import torch
from helpers import Classifier, events, fit, loader
from torch import nn

import lightning_sanity
from lightning_sanity import images
from lightning_sanity.callbacks.predictions import PredictionDynamics
from lightning_sanity.callbacks.summary import SanitySummary

pytestmark = pytest.mark.usefixtures("one_thread")

IMAGE_TAGS = ("sanity/predictions/probabilities", "sanity/predictions/true_class_over_time")


def _pixels(image_event) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(image_event.encoded_image_string)).convert("RGB"))


def _ink(region: np.ndarray) -> int:
    """Dark text pixels in a margin of a chart (the margins are white; the text is near-black)."""
    return int((region.max(-1) < 110).sum())


def _assert_labelled_chart(pixels: np.ndarray) -> None:
    height, width, _ = pixels.shape
    assert (width, height) == images.IMAGE_SIZE
    assert 1.0 <= width / height <= 2.0  # neither a tall strip nor a wide ribbon
    top, left = images.TOP, images.LEFT
    assert _ink(pixels[:top, left:left + images.PLOT_W]) > 40  # the title
    assert _ink(pixels[top:top + images.PLOT_H, :20]) > 20  # the y axis name, turned a quarter
    assert _ink(pixels[top:top + images.PLOT_H, 20:left]) > 5  # the first and last sample's index
    assert _ink(pixels[top + images.PLOT_H + 2:, left:left + images.PLOT_W]) > 30  # x ticks and the x axis name
    # The colour bar: bright yellow at the top (the maximum), dark violet at the bottom (the minimum), labelled.
    bar = pixels[top:top + images.PLOT_H, left + images.PLOT_W + 8:left + images.PLOT_W + 20].astype(int)
    assert bar[1].mean(0)[:2].min() > 200 and bar[-2].mean(0).max() < 100
    assert _ink(pixels[top - 6:top + images.PLOT_H + 6, left + images.PLOT_W + 20:]) > 5


def _no_chart(num_classes: int) -> torch.Tensor:
    return torch.softmax(torch.randn(64, num_classes, generator=torch.Generator().manual_seed(num_classes)), -1)


@pytest.mark.parametrize("num_classes", [3, 100, 1000])
def test_probability_chart_has_labels_scale_and_one_shape_for_any_number_of_classes(num_classes):
    chart = images.probabilities_chart(_no_chart(num_classes), "classification")
    _assert_labelled_chart(chart.permute(1, 2, 0).numpy())


def test_bucketed_classes_keep_a_confident_class_visible():
    probs = torch.full((64, 1000), 1e-4)
    probs[0, 997] = 0.9
    plot = images.plot_area(images.probabilities_chart(probs, "classification").permute(1, 2, 0).numpy())
    first_sample = plot[:images.PLOT_H // 64]
    assert (first_sample[..., 0] > 180).any()  # yellow where class 997's bucket is
    assert not (plot[images.PLOT_H // 64:, :, 0] > 180).any()


def test_history_chart_thins_snapshots_and_keeps_the_last():
    columns = [torch.full((8,), i / 999) for i in range(1000)]
    plot = images.plot_area(images.history_chart(columns, list(range(1000))).permute(1, 2, 0).numpy()).astype(int)
    assert plot[:, 0].sum() < plot[:, -1].sum()  # first snapshot dark, last bright
    assert plot[:, -1, 0].min() > 230  # the very last snapshot (value 1.0: yellow) is drawn


def _class_data(num_classes: int, n: int = 384) -> tuple[torch.Tensor, torch.Tensor]:
    """A learnable rule: the class is the largest of the first ``num_classes`` features."""
    x = torch.randn(n, max(num_classes, 8), generator=torch.Generator().manual_seed(0))
    return x, x[:, :num_classes].argmax(1)


def _fit_classes(tmp_path, num_classes: int, callbacks, net=None):
    L.seed_everything(0)
    x, y = _class_data(num_classes)
    model = Classifier(net=net, in_features=x.shape[1], classes=num_classes, lr=1e-2)
    return fit(model, tmp_path, loader(x[:320], y[:320], 32), loader(x[320:], y[320:], 64, shuffle=False),
               callbacks=callbacks, max_epochs=2, log_every_n_steps=5)


def test_images_read_back_from_the_event_file_have_labelled_axes_for_100_classes(tmp_path):
    t = _fit_classes(tmp_path, 100, [PredictionDynamics(), SanitySummary(print_summary=False)])
    acc = events(t.log_dir)
    for tag in IMAGE_TAGS:
        _assert_labelled_chart(_pixels(acc.Images(tag)[-1]))


def _layout(acc):
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.util import tensor_util

    config = acc.Tensors("custom_scalars__config__")[-1]  # TensorBoard shows the latest
    return layout_pb2.Layout.FromString(tensor_util.make_ndarray(config.tensor_proto).item())


def test_three_classes_full_suite_labelled_images_and_a_layout_without_empty_charts(tmp_path):
    # ReLU only: nothing can saturate, so there is no "saturated outputs per layer" chart to draw empty.
    net = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    t = _fit_classes(tmp_path, 3, lightning_sanity.default_callbacks(print_summary=False), net=net)
    acc = events(t.log_dir)
    for tag in IMAGE_TAGS:
        _assert_labelled_chart(_pixels(acc.Images(tag)[-1]))

    layout = _layout(acc)
    sections = [c.title for c in layout.category]
    assert sections and all(s.startswith("sanity: ") for s in sections), sections
    assert {"sanity: norms", "sanity: activations", "sanity: batchnorm", "sanity: predictions"} <= set(sections)
    scalars = acc.Tags()["scalars"]
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert "saturated outputs per layer" not in charts and "dead units per layer" in charts
    for title, regexes in charts.items():
        assert any(re.search(r, tag) for r in regexes for tag in scalars), (title, regexes)


def test_a_chart_enters_the_layout_with_its_first_data_and_every_section_is_named_sanity():
    from lightning_sanity import tensorboard

    t = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    tensorboard.add_layout_chart(t, "activations", "saturated outputs per layer", "sanity/saturated_fraction/.*")
    tensorboard.add_layout_chart(t, "sanity: activations", "dead units per layer", "sanity/dead_fraction/.*")
    assert tensorboard.layout(t) == {} and not tensorboard.write_layout(t)
    tensorboard.log_scalars(t, {"sanity/dead_fraction/net.1": 0.0}, step=0)
    dead = {"dead units per layer": ["Multiline", ["sanity/dead_fraction/.*"]]}
    assert tensorboard.layout(t) == {"sanity: activations": dead}
    tensorboard.log_scalars(t, {"sanity/saturated_fraction/net.3": 0.0}, step=5)
    assert set(tensorboard.layout(t)["sanity: activations"]) == {"dead units per layer", "saturated outputs per layer"}


def test_charts_are_labelled_without_importing_pillow(monkeypatch):
    # The labels are drawn from the suite's own glyphs: Pillow's import and font loading (about 20 ms at the first
    # chart of a process) are not needed, and a stripped install without it still gets labelled charts.
    monkeypatch.setitem(sys.modules, "PIL", None)  # `import PIL` now fails as if it were absent
    images._frame.cache_clear()
    try:
        chart = images.probabilities_chart(_no_chart(3), "classification")
    finally:
        images._frame.cache_clear()
    _assert_labelled_chart(chart.permute(1, 2, 0).numpy())
"""The fixed batch's images and histograms judge nothing: they wait for the periodic budget, and the latest is
drawn at the end of fit in any case; the images are PNGs the suite encodes itself."""

import io

import numpy as np
import torch
from helpers import Classifier, digits_loaders, events, trainer
from PIL import Image

import lightning_sanity
from lightning_sanity.tensorboard import png_bytes


def test_png_bytes_decode_to_the_same_pixels():
    image = torch.randint(0, 256, (3, 17, 29), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    decoded = np.asarray(Image.open(io.BytesIO(png_bytes(image))).convert("RGB"))
    assert decoded.shape == (17, 29, 3) and np.array_equal(decoded, image.permute(1, 2, 0).numpy())


def test_a_tight_budget_keeps_every_scalar_and_draws_the_last_picture(tmp_path):
    train, val = digits_loaders()
    t = trainer(tmp_path, callbacks=lightning_sanity.default_callbacks(print_summary=False, periodic_budget=1e-6),
                max_epochs=2)
    t.fit(Classifier(), train, val)
    acc = events(t.log_dir)
    accuracy = acc.Scalars("sanity/predictions/accuracy")
    assert len(accuracy) >= 10  # every 5 steps and at epoch ends: the looks jitter needs, whatever the budget
    pictures = acc.Images("sanity/predictions/probabilities")
    # At most the first (nothing spent yet) and the last, drawn at the end of fit: the latest snapshot's.
    assert 1 <= len(pictures) <= 2 and pictures[-1].step == accuracy[-1].step
    assert acc.Histograms("sanity/predictions/outputs")[-1].step == accuracy[-1].step

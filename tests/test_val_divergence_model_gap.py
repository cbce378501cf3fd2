"""val-divergence's model gap on real Trainer runs: a validation_step that averages predictions over flipped and
rotated digits (test-time augmentation the model never trained for) fires; plain validation, label smoothing in both
steps, and validating an EMA copy stay silent of it."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import Classifier, digits_loaders, fit, read_report, serious
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

pytestmark = pytest.mark.usefixtures("one_thread")


def _views(x):
    """The eight flips and quarter turns of 8x8 digits, flattened again."""
    images = x.view(-1, 8, 8)
    views = []
    for k in range(4):
        r = torch.rot90(images, k, dims=(1, 2))
        views += [r, torch.flip(r, dims=(2,))]
    return [v.reshape(-1, 64) for v in views]


class DihedralTTA(Classifier):
    def validation_step(self, batch, batch_idx):
        x, y = batch
        probs = torch.stack([self(v).softmax(-1) for v in _views(x)]).mean(0)
        self.log("val_loss", F.nll_loss(probs.clamp_min(1e-8).log(), y))


class Smoothed(Classifier):
    def __init__(self):
        super().__init__(loss_fn=lambda logits, y: F.cross_entropy(logits, y, label_smoothing=0.1))


class EMAValidated(Classifier):
    """Validates an EMA copy whose decay is slow for this run: worse than the live weights, by design."""

    def __init__(self):
        super().__init__()
        self.ema = AveragedModel(self.net, multi_avg_fn=get_ema_multi_avg_fn(0.99))

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.ema.update_parameters(self.net)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.ema(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)


def _model_gap(model, tmp_path):
    L.seed_everything(0)
    train, val = digits_loaders()
    report = read_report(fit(model, tmp_path, train, val, max_epochs=5).log_dir)
    return [f for f in report["findings"] if f["data"].get("pattern") == "model-gap"], report


def test_dihedral_tta_in_validation_step_fires(tmp_path):
    found, report = _model_gap(DihedralTTA(), tmp_path)
    assert found and found[0]["check"] == "val-divergence" and found[0]["severity"] == "warning", report["findings"]
    assert found[0]["data"]["val_loss"] > found[0]["data"]["training_way_loss"] + 0.3 * found[0]["data"]["baseline"]


@pytest.mark.parametrize("model", [Classifier, Smoothed, EMAValidated], ids=["plain", "smoothed", "ema"])
def test_validation_of_the_model_itself_is_silent(tmp_path, model):
    found, report = _model_gap(model(), tmp_path)
    assert not found, found
    assert not serious(report, "val-divergence"), report["findings"]

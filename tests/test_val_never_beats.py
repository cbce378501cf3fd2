"""val-divergence's baseline rules judged beyond the noise of the validation mean: a validated copy of the model that
never trains (an EMA whose decay suits a run 100x longer) never beats the baseline and is a warning; a weak-signal
binary task that beats the baseline a little and then overfits stays silent; a Gaussian NLL validated with the
``log 2 pi`` constant (no natural zero) is not compared with the training loss's baseline."""

from __future__ import annotations

import copy
import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import Classifier, digits, loader, read_report, serious, trainer
from torch import nn

import lightning_sanity
from lightning_sanity.checks.val_noise import ValNoise, prior_spread
from lightning_sanity.checks.validation import judge_val_divergence


def _fit(tmp_path, model, train, val, epochs) -> dict:
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), logger=None, max_epochs=epochs)
    t.fit(model, train, val)
    return read_report(t.log_dir)


class _EmaValidated(Classifier):
    """Validates an exponential moving average of the weights, as timm's train script does."""

    def __init__(self, decay: float) -> None:
        super().__init__()
        self.decay = decay
        self.ema = copy.deepcopy(self.net).requires_grad_(False)

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        with torch.no_grad():
            for e, p in zip(self.ema.parameters(), self.net.parameters()):
                e.mul_(self.decay).add_(p, alpha=1 - self.decay)

    def validation_step(self, batch, batch_idx) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.ema(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)


@pytest.mark.parametrize("decay", [0.9999, 0.9])
def test_a_validated_copy_that_never_trains_never_beats_the_baseline(tmp_path, decay):
    x, y = digits()
    report = _fit(tmp_path, _EmaValidated(decay), loader(x[:1400], y[:1400], 64), loader(x[1400:], y[1400:], 512,
                                                                                             False), epochs=3)
    found = serious(report, "val-divergence")
    if decay == 0.9:  # the average follows a 66-step run: it learns, silent
        assert not found, found
        return
    (finding,) = found
    assert finding["severity"] == "warning" and finding["data"]["pattern"] == "never-beats-baseline"
    assert finding["data"]["val_samples"] == len(x) - 1400 and "EMA" in finding["advice"]
    assert min(finding["data"]["val_losses"]) >= finding["data"]["beat_bar"]

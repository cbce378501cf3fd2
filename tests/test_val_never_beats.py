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


def _weak_signal(n, gen):
    # The label depends on two features through heavy noise: the best possible model reaches a loss of ~0.55
    # against ln 2, a weak signal that a wide network overfits within a few epochs.
    x = torch.randn(n, 8, generator=gen)
    return x, ((x[:, 0] + 0.5 * x[:, 1]) + 1.5 * torch.randn(n, generator=gen) > 0).long()


def test_a_weak_signal_task_that_beats_the_baseline_a_little_then_overfits_is_not_an_error(tmp_path):
    gen = torch.Generator().manual_seed(0)
    (xt, yt), (xv, yv) = _weak_signal(200, gen), _weak_signal(600, gen)
    net = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))
    report = _fit(tmp_path, Classifier(net=net, lr=3e-3, in_features=8, classes=2), loader(xt, yt, 32),
                  loader(xv, yv, 512, False), epochs=20)
    assert not serious(report, "val-divergence")
    (info,) = [f for f in report["findings"] if f["check"] == "val-divergence"]
    data = info["data"]
    # Never 20 % below ln 2 and ended 20 % above it (the relative margin called this an error), but 600 balanced
    # labels make a constant prediction cost ln 2 on every sample: the best validation did beat it.
    assert data["pattern"] == "overfitting" and data["val_samples"] == 600
    assert 0.8 * data["baseline"] < data["best_val"] < data["baseline"] < 1.2 * data["baseline"] < data["val_losses"][-1]


class _Heteroscedastic(L.LightningModule):
    """Gaussian NLL without the constant in training (it can go negative), the full NLL in validation."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, 32), nn.SiLU())
        self.mean, self.std = nn.Linear(32, 1), nn.Linear(32, 1)

    def nll(self, batch, full):
        x, y = batch
        h = self.trunk(x)
        var = (F.softplus(self.std(h)).squeeze(-1) + 1e-3) ** 2
        return F.gaussian_nll_loss(self.mean(h).squeeze(-1), y, var, full=full)

    def training_step(self, batch, batch_idx):
        return self.nll(batch, False)

    def validation_step(self, batch, batch_idx):
        self.log("val_nll", self.nll(batch, True))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("permuted", [False, True])
def test_a_loss_without_a_natural_zero_is_not_compared_with_the_baseline(tmp_path, permuted):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1400, 4, generator=gen) * 4 - 2
    y = torch.sin(1.5 * x[:, 0]) + 0.5 * x[:, 1] + (0.1 + 0.4 * x[:, 2].abs()) * torch.randn(1400, generator=gen)
    y_val = y[1000:][torch.randperm(400, generator=gen)] if permuted else y[1000:]
    report = _fit(tmp_path, _Heteroscedastic(), loader(x[:1000], y[:1000], 64), loader(x[1000:], y_val, 200, False),
                  epochs=8)
    check = {c["name"]: c for c in report["checks"]}["val-divergence"]
    assert "no natural zero" in check["detail"]
    # The validation NLL sits log(2 pi) / 2 = 0.92 above the training one: within a factor 2 of it, but compared
    # with the training baseline it would look worse than a constant prediction (the ratio cannot see a shift).
    assert not serious(report, "val-divergence")


def test_noise_model_and_never_beats_judgement():
    assert prior_spread([50, 50]) == 0.0 and prior_spread([1, 0]) == 0.0
    balanced = ValNoise(600, 600, prior_spread([300, 300]))
    assert balanced.beat_bar(math.log(2)) == pytest.approx(math.log(2))  # ln 2 on every sample: no noise
    flat = [2.31, 2.31, 2.31, 2.31]
    falls = [1.9, 1.2, 0.8, 0.55]
    assert judge_val_divergence(falls, flat, 2.30, val_samples=360).kind == "never-beats-baseline"
    assert judge_val_divergence(falls, flat, 2.30, val_samples=360, complete=False) is None  # a crash: not the run
    assert judge_val_divergence(falls, flat, 2.30) is None  # no sample count: the noise is unknown
    assert judge_val_divergence(falls, flat[:2], 2.30, val_samples=360) is None  # two looks only
    # A split too small to show a transferable signal (the noise band wider than the margin): not judged.
    assert judge_val_divergence(falls, flat, 2.30, val_samples=40) is None
    # Validation that dips below the bar: it learned something, silent.
    assert judge_val_divergence(falls, [2.31, 1.9, 2.2, 2.31], 2.30, val_samples=360) is None

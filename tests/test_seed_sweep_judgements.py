"""Judgements that sat on their thresholds in a seed sweep of the healthy zoo: a brief early loss spike, a small
validation split that overfits, a near-zero layer growing to its ordinary scale."""

from __future__ import annotations

import math

import lightning as L
import torch
import torch.nn.functional as F
from helpers import diabetes, digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity.callbacks.val_divergence import ValDivergence
from lightning_sanity.checks import loss_trend
from lightning_sanity.checks.validation import judge_val_divergence

LN10 = math.log(10)


# --------------------------------------------------------------------------- loss-trend: a brief early spike


def _spiky(peak: float, back_at: int, end: float, n: int) -> list[float]:
    """A loss that spikes to ``peak`` at batch 4, is back below its start at ``back_at`` and falls to ``end``."""
    head = [2.43, 2.5, 4.0, peak, peak * 0.95, peak * 0.9, peak * 0.5][:back_at] + [3.0] * max(0, back_at - 7)
    rest = n - len(head)
    return head + [2.2 * (end / 2.2) ** (i / (rest - 1)) for i in range(rest)]


def test_a_brief_early_spike_ending_far_below_the_start_is_only_information():
    # SGD + StepLR on digits at another seed: 2.43 -> 8.8 at batch 4, back below the start at batch 9 of 282,
    # ends at 0.0056. The explosion is found, but the run did not spend its budget recovering.
    verdict, _ = loss_trend.judge_loss_trend(_spiky(8.8, 8, 0.0056, 282), start=2.43, progress=1.0, seen="all",
                                             baseline=LN10)
    assert verdict.kind == "exploded" and verdict.severity == "info"
    assert "spent its budget" not in verdict.message and "brief spike" in verdict.message
    # The same spike that leaves the run near the baseline (an lr far too high: ends 1.97 against ln 10) is a
    # warning, and so is one whose recovery takes a quarter of the run.
    stuck, _ = loss_trend.judge_loss_trend(_spiky(178.0, 10, 1.97, 120), start=2.30, progress=1.0, seen="all",
                                           baseline=LN10)
    assert stuck.kind == "exploded" and stuck.severity == "warning" and "spent its budget" in stuck.message
    slow, _ = loss_trend.judge_loss_trend(_spiky(8.8, 70, 0.0056, 282), start=2.43, progress=1.0, seen="all",
                                          baseline=LN10)
    assert slow.kind == "exploded" and slow.severity == "warning"


# --------------------------------------------------------------------------- val-divergence: small splits


def test_never_beat_within_the_noise_of_a_small_validation_split_is_information():
    # Diabetes, 70 validation patients: best 0.651 under the one-batch baseline 0.732, ended 0.879. Neither "never
    # beat" nor "worse" is beyond the noise of 70 samples (+-17 % per standard error): overfitting, information.
    train = [0.6 - 0.012 * i for i in range(30)]
    val = [0.745, 0.86, 0.651] + [0.86 + 0.001 * i for i in range(26)] + [0.879]
    small = judge_val_divergence(train, val, 0.732, val_samples=70)
    assert small.kind == "overfitting" and small.severity == "info" and small.data["val_samples"] == 70
    # Over 5,000 samples 0.651 did beat the baseline beyond noise: overfitting again. With the count unknown, the
    # relative margin stands in for the noise: never 20 % below, ended 20 % above, an error.
    assert judge_val_divergence(train, val, 0.732, val_samples=5000).severity == "info"
    assert judge_val_divergence(train, val, 0.732, val_samples=None).severity == "error"
    # Labels that disagree between the splits: validation never gets below the baseline at all.
    never = judge_val_divergence(train, [0.95, 1.1, 1.3, 1.5], 0.732, val_samples=70)
    assert never.kind == "worse-than-baseline" and never.severity == "error"


class _Regressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.net(x).squeeze(-1), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self.net(x).squeeze(-1), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_the_validation_sample_count_is_one_validation_run(tmp_path):
    L.seed_everything(0)
    x, y = diabetes()
    y = (y - y.mean()) / y.std()
    monitor = ValDivergence()
    fit(_Regressor(), tmp_path, loader(x[:300], y[:300], 32), loader(x[300:370], y[300:370], 16, shuffle=False),
        callbacks=[monitor], max_epochs=2)
    assert monitor._val_samples() == 70  # the sanity check's batches are not counted again


# --------------------------------------------------------------------------- weight-growth: from near zero


class _SmallHead(L.LightningModule):
    """A digits MLP whose head starts at ``scale`` times its default initialisation."""

    def __init__(self, scale, sign=0.0, lr=1e-2):
        super().__init__()
        self.sign, self.lr = sign, lr
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
        with torch.no_grad():
            self.net[2].weight.mul_(scale)
            self.net[2].bias.mul_(scale)

    def training_step(self, batch, batch_idx):
        x, y = batch
        penalty = self.net[2].weight.pow(2).sum()
        return F.cross_entropy(self.net(x), y) - self.sign * penalty

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def test_a_near_zero_head_growing_to_its_default_scale_is_not_weight_growth(tmp_path):
    L.seed_everything(0)
    x, y = digits()
    model = _SmallHead(1e-3)
    start = model.net[2].weight.norm().item()
    report = read_report(fit(model, tmp_path / "healthy", loader(x[:1280], y[:1280]), max_epochs=2).log_dir)
    assert model.net[2].weight.norm().item() > 10 * start  # it did grow tenfold, to an ordinary scale
    assert not serious(report, "weight-growth"), serious(report, "weight-growth")
    # The same head pushed up without bound by a rewarded norm grows far past any initialisation scale.
    L.seed_everything(0)
    report = read_report(fit(_SmallHead(1e-3, sign=1e-2, lr=5e-2), tmp_path / "bug",
                             loader(x[:1280], y[:1280]), max_epochs=3).log_dir)
    assert serious(report, "weight-growth")

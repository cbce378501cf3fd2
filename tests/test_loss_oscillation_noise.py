"""loss-trend's oscillation verdicts judge losses averaged over enough samples: a class-weighted loss on small
batches (and gradient accumulation) jumps by sampling alone and stays silent; a learning rate too high still fires."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity.callbacks.data_checks import DataChecks
from lightning_sanity.callbacks.loss_dynamics import LossDynamics
from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import loss_oscillation as O
from lightning_sanity.checks.loss_trend import judge_loss_trend

pytestmark = pytest.mark.usefixtures("one_thread")


def _callbacks():
    # The data checks count the labels (the effective batch size of a weighted loss), the inspector the loss.
    return [DataChecks(), LossInspector(), LossDynamics(), SanitySummary(print_summary=False)]


class WeightedCE(L.LightningModule):
    """Cross-entropy with the given class weights and label smoothing, Adam, an optional short warm-up."""

    def __init__(self, net: nn.Module, weight: torch.Tensor, lr: float, smoothing: float = 0.0, warmup: int = 0):
        super().__init__()
        self.net, self.lr, self.smoothing, self.warmup = net, lr, smoothing, warmup
        self.register_buffer("weight", weight)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y, weight=self.weight, label_smoothing=self.smoothing)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y, weight=self.weight, label_smoothing=self.smoothing))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.lr)
        if not self.warmup:
            return opt
        ramp = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / self.warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": ramp, "interval": "step"}}


def _rare_positives(n: int = 2400):
    """6 % positives shifted by 2.5 along 4 of 20 features: separable enough that the median batch is far below
    the baseline, while a positive's loss stays high (it is rare and its class weight is 8x the other's)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 20, generator=g)
    y = (torch.rand(n, generator=g) < 0.06).long()
    x[:, :4] += 2.5 * y[:, None]
    counts = torch.bincount(y[:2000], minlength=2).float()
    return x, y, counts.sum() / (2 * counts)


@pytest.mark.parametrize("accumulate", [1, 4])
def test_weighted_loss_on_small_batches_healthy_run_is_silent(tmp_path, accumulate):
    # One positive in a batch of 16 carries half the batch's weight: the batch loss jumps above the best constant's
    # (0.73) on a third of the batches while validation falls below 0.5. Judged per batch this was "keeps jumping
    # back above the baseline"; a batch holds about 4 effective samples, so the judgement averages 8 batches.
    x, y, weight = _rare_positives()
    L.seed_everything(0)
    model = WeightedCE(nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 2)), weight, lr=1e-3,
                       smoothing=0.05)
    trainer = fit(model, tmp_path, loader(x[:2000], y[:2000], 16), loader(x[2000:], y[2000:], 200, shuffle=False),
                  callbacks=_callbacks(), max_epochs=8, accumulate_grad_batches=accumulate)
    report = read_report(trainer.log_dir)
    assert serious(report, "loss-trend") == [], serious(report, "loss-trend")
    assert next(c for c in report["checks"] if c["name"] == "loss-trend")["status"] == "pass"
    assert trainer.callback_metrics["val_loss"] < 0.6  # it did learn


def test_too_high_learning_rate_with_weighted_small_batches_still_oscillates(tmp_path):
    # The same kind of run (class weights, batches of 16, accumulation over 4) with Adam at 0.5: the loss keeps
    # leaping back up for whole updates (validation ends above 4, twice the uniform prediction's 2.3).
    x, y = digits()
    keep = (y < 5) | (torch.arange(len(y)) % 8 == 0)  # classes 5-9 kept 1 in 8
    x, y = x[keep], y[keep]
    counts = torch.bincount(y, minlength=10).float()
    net = nn.Sequential(nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 10))
    L.seed_everything(0)
    model = WeightedCE(net, counts.sum() / (10 * counts), lr=0.5, warmup=40)
    split = int(0.8 * len(x))
    trainer = fit(model, tmp_path, loader(x[:split], y[:split], 16), loader(x[split:], y[split:], 256, shuffle=False),
                  callbacks=_callbacks(), max_epochs=8, accumulate_grad_batches=4)
    (finding,) = serious(read_report(trainer.log_dir), "loss-trend")
    assert finding["data"]["pattern"] == "oscillating"
    assert finding["data"]["batches_per_judged_value"] == 8  # two updates of 4 batches of 16 (7 effective samples)


def test_effective_samples_of_a_weighted_loss():
    # Inverse-frequency weights on 6 % positives: a batch of 16 holds 3.5 effective samples.
    spam = O.samples_per_batch({"class_weight": [0.53, 8.62], "label_counts": [61, 3]}, 16)
    assert spam == pytest.approx(3.53, abs=0.01)
    assert O.samples_per_batch({"label_counts": [61, 3]}, 16) == 16  # no weights: every sample counts
    assert O.samples_per_batch({"class_weight": [1.0, 1.0], "label_counts": [61, 3]}, 16) == 16
    # pos_weight 15 on 6 % positives, like the class weights above.
    assert O.samples_per_batch({"pos_weight": [15.0], "label_counts": [94, 6]}, 16) < 8
    assert O.samples_per_batch({}, None) is None
    # Whole updates, and enough of them for 32 effective samples.
    assert O.averaging_window(1, 4, spam) == 12 and O.averaging_window(1, 1, 64) == 1
    assert O.averaging_window(1, 4, None) == 4  # the batch size unknown: one update
    assert O.averaging_window(4, 4, 4) == 2  # thinned history: each value already holds 4 batches (16 samples)


def test_composition_noise_is_silent_and_jumps_lasting_whole_updates_still_fire():
    # Spam-like batch losses: 0.26 without a positive, 0.84 (above the 0.83 baseline) with one, independently.
    g = torch.Generator().manual_seed(0)
    falling = [1.7 * 0.97 ** i + 0.3 for i in range(200)]
    noise = [0.84 if float(u) < 0.4 else 0.26 for u in torch.rand(800, generator=g)]
    values = falling + noise
    kwargs = dict(progress=1.0, seen="all", baseline=0.83)
    assert judge_loss_trend(values, **kwargs)[0].kind == "oscillating"  # judged batch by batch
    assert judge_loss_trend(values, batches_per_update=4, samples_per_batch=3.5, **kwargs) == (None, None)
    # The same level with jumps that last 24 batches (6 updates) every 120: the model itself is worse.
    jumps = [1.6 if i % 120 < 24 else v for i, v in enumerate(noise)]
    verdict, _ = judge_loss_trend(falling + jumps, batches_per_update=4, samples_per_batch=3.5, **kwargs)
    assert verdict.kind == "oscillating" and verdict.data["batches_per_judged_value"] == 12

"""val-divergence on real Trainers: train and validation label maps that disagree fire, a healthy run is silent,
overfitting is info, and a validation loss on another scale is not compared with the baseline."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from helpers import Classifier, digits, loader, read_report, serious, trainer
from sklearn.model_selection import train_test_split

import lightning_sanity
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.callbacks.val_divergence import ValDivergence
from lightning_sanity.checks.validation import judge_val_divergence, val_loss_key


def _split(n=None):
    x, y = digits(n)
    tr, va = train_test_split(np.arange(len(x)), test_size=0.25, random_state=0)
    return x, y, tr, va


def _fit(tmp_path, model, train, val, callbacks=None, epochs=4) -> dict:
    L.seed_everything(0)
    callbacks = callbacks or lightning_sanity.default_callbacks(print_summary=False)
    t = trainer(tmp_path, callbacks, logger=None, max_epochs=epochs)
    t.fit(model, train, val)
    return read_report(t.log_dir)


def test_train_and_validation_label_maps_that_disagree_fire(tmp_path):
    x, y, tr, va = _split()
    report = _fit(tmp_path, Classifier(), loader(x[tr], (y[tr] + 1) % 10, 64), loader(x[va], y[va], 256, False))
    found = serious(report, "val-divergence")
    assert found and found[0]["severity"] == "error" and found[0]["data"]["pattern"] == "worse-than-baseline"
    assert found[0]["where"] == "val_loss" and "label encoding" in found[0]["advice"]


def test_healthy_digits_run_is_silent(tmp_path):
    x, y, tr, va = _split()
    report = _fit(tmp_path, Classifier(), loader(x[tr], y[tr], 64), loader(x[va], y[va], 256, False))
    check = {c["name"]: c for c in report["checks"]}["val-divergence"]
    assert check["status"] == "pass" and "baseline" in check["detail"]
    assert not serious(report)


def test_overfitting_is_info(tmp_path):
    # 100 training samples, 30 % of their labels random: the network memorises the noise, and the validation loss
    # turns up (about 30 % above its best) while the training loss keeps falling.
    x, y, tr, va = _split()
    g = torch.Generator().manual_seed(0)
    y_train = y[tr[:100]].clone()
    noisy = torch.rand(100, generator=g) < 0.3
    y_train[noisy] = torch.randint(0, 10, (int(noisy.sum()),), generator=g)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
    report = _fit(tmp_path, Classifier(net=net), loader(x[tr[:100]], y_train, 20), loader(x[va], y[va], 512, False),
                  callbacks=[ValDivergence(), SanitySummary(print_summary=False)], epochs=20)
    findings = [f for f in report["findings"] if f["check"] == "val-divergence"]
    assert findings and findings[0]["data"]["pattern"] == "overfitting"
    assert findings[0]["severity"] == "info" and report["status"] == "pass"


class _SummedValLoss(Classifier):
    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self(x), y, reduction="sum"))


def test_validation_loss_on_another_scale_is_not_compared_with_the_baseline(tmp_path):
    x, y, tr, va = _split()
    report = _fit(tmp_path, _SummedValLoss(), loader(x[tr], y[tr], 64), loader(x[va], y[va], 256, False))
    assert not serious(report, "val-divergence")
    detail = {c["name"]: c for c in report["checks"]}["val-divergence"]["detail"]
    assert "not on the scale" in detail


def test_no_validation_loss_is_skipped_and_bad_argument(tmp_path):
    x, y, tr, va = _split(400)
    report = _fit(tmp_path, Classifier(), loader(x[tr], y[tr], 64), None, epochs=1)
    check = {c["name"]: c for c in report["checks"]}["val-divergence"]
    assert check["status"] == "skipped" and "val_loss" in check["detail"]
    with pytest.raises(ValueError, match="val_loss_key"):
        ValDivergence(val_loss_key=3)


def test_judgement_and_key_lookup():
    assert judge_val_divergence([1.0, 0.2, 0.1], [2.0, 2.5, 3.0], baseline=1.0).kind == "worse-than-baseline"
    assert judge_val_divergence([1.0, 0.2, 0.1], [2.0, 2.5, 3.0], baseline=None).kind == "overfitting"
    assert judge_val_divergence([1.0, 0.2, 0.1], [1.2, 2.5, 5.0], baseline=2.3).severity == "warning"  # extreme
    # never clearly below the baseline (2.0 vs 2.3) and ends far above it: not overfitting, worse than the baseline
    assert judge_val_divergence([1.0, 0.2, 0.1], [2.0, 2.5, 5.0], baseline=2.3).kind == "worse-than-baseline"
    assert judge_val_divergence([1.0, 0.5, 0.2], [0.9, 0.5, 0.55], baseline=2.3) is None  # within `rise`
    rising = judge_val_divergence([1.0, 0.5, 0.3, 0.2], [0.6, 0.5, 0.6, 0.7], baseline=2.3)
    assert rising.kind == "overfitting" and rising.severity == "info"
    assert val_loss_key({"train_loss": 0, "val_acc": 1}) is None
    assert val_loss_key({"loss": 0, "hp/valid_loss": 1}) == "hp/valid_loss"
    assert val_loss_key({"train_mse": 0, "val_mse": 1, "val_mae": 2}) == "val_mse"


@pytest.mark.parametrize("scaled_validation", [False, True])
def test_validation_targets_left_unscaled_fire_and_scaled_ones_stay_silent(tmp_path, scaled_validation):
    # Diabetes with the target standardized on the training split: the bug leaves validation on the raw scale
    # (25..346), so its mean lies outside every training target. The same run scaling both splits is silent.
    from helpers import diabetes

    x, y = diabetes()
    tr, va = train_test_split(np.arange(len(x)), test_size=0.2, random_state=0)
    mean, std = y[tr].mean(), y[tr].std()
    y_val = (y[va] - mean) / std if scaled_validation else y[va]
    net = torch.nn.Sequential(torch.nn.Linear(10, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1), torch.nn.Flatten(0))
    model = Classifier(net=net, lr=3e-3, loss_fn=torch.nn.functional.mse_loss)
    report = _fit(tmp_path, model, loader(x[tr], (y[tr] - mean) / std, 32), loader(x[va], y_val, 128, False),
                  callbacks=[ValDivergence(), SanitySummary(print_summary=False)], epochs=3)
    found = serious(report, "val-divergence")
    if scaled_validation:
        assert not found
    else:
        assert found and found[0]["data"]["pattern"] == "target-shift" and found[0]["severity"] == "error"
        assert found[0]["data"]["val_target_mean"] > 100 and "scaler" in found[0]["advice"]


def test_validation_prepared_differently_ends_above_the_baseline(tmp_path):
    # The validation images go through another preprocessing (moved down one row, scaled twice as bright), the
    # training ones do not: validation first beats the baseline (the digits are still recognisable), then the
    # model's growing confidence makes it end worse than a prediction that ignores the image.
    x, y, tr, va = _split()
    moved = 2 * torch.roll(x.reshape(-1, 8, 8), 1, -2).reshape(-1, 64)
    report = _fit(tmp_path, Classifier(), loader(x[tr], y[tr], 64), loader(moved[va], y[va], 256, False), epochs=10)
    (finding,) = serious(report, "val-divergence")
    assert finding["severity"] == "warning" and finding["data"]["pattern"] == "ends-above-baseline"
    assert finding["data"]["val_samples"] == len(va) and finding["data"]["val_losses"][-1] > finding["data"]["bar"]
    assert finding["data"]["best_val"] < finding["data"]["baseline"] * 0.8  # it did beat the baseline first


def test_ends_above_baseline_needs_more_than_the_validation_noise():
    from lightning_sanity.checks.val_baseline_end import judge_ends_above_baseline

    train, val = [1.0, 0.3, 0.1], [1.2, 1.5, 1.55]
    assert judge_ends_above_baseline(train, val, 1.1, samples=2000).kind == "ends-above-baseline"
    assert judge_ends_above_baseline(train, val, 1.1, samples=40) is None  # 3 x 1.55 / sqrt(40) = 0.74 of noise
    assert judge_ends_above_baseline(train, val, 1.1, samples=None) is None
    assert judge_ends_above_baseline([1.0, 1.0, 0.95], val, 1.1, samples=2000) is None  # training did not learn

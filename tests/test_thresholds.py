"""Per-check thresholds (``default_callbacks(thresholds=...)``, ``set_thresholds``) on real Trainer runs: a bug that
fires at the default goes silent when the user loosens its threshold, a borderline healthy run that is silent at
the default fires when the user tightens it; bad names and values are refused, and every declared threshold is
listed with its module constant as the default."""

from typing import Any

import lightning as L
import pytest
import torch
from helpers import Classifier, digits, fit, loader, read_report, serious
from torch import nn

import lightning_sanity
from lightning_sanity import CHECKS, SanitySummary
from lightning_sanity.callbacks.activations import ActivationMonitor
from lightning_sanity.callbacks.data_checks import DataChecks
from lightning_sanity.callbacks.loss_dynamics import LossDynamics
from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.predictions import PredictionDynamics
from lightning_sanity.checks import activations as A
from lightning_sanity.checks import data as D
from lightning_sanity.checks import flow, jitter, loss_trend, lr_history
from lightning_sanity.checks import initial_loss as LO


pytestmark = pytest.mark.usefixtures("one_thread")


def _only_these(*checks: str) -> list[str]:
    """``disable=`` that leaves only ``checks`` running: fast runs that still go through ``default_callbacks``."""
    return [c for c in CHECKS if c not in checks]


def _suite(*checks: str, thresholds: Any = None) -> list:
    return lightning_sanity.default_callbacks(disable=_only_these(*checks), thresholds=thresholds,
                                              print_summary=False)


def _run(model, tmp_path, callbacks, train=None, val=None, **kwargs) -> dict:
    L.seed_everything(0)
    settings: dict[str, Any] = dict(max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0)
    settings.update(kwargs)
    t = fit(model, tmp_path, train, val, callbacks=callbacks, **settings)
    return read_report(t.log_dir)


# --------------------------------------------------------------------------- lr-schedule (a bug, loosened)


class StepDecay(Classifier):
    """SGD with a StepLR that divides the learning rate by 100 every epoch: collapsed after the first epoch."""

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.01)]


@pytest.mark.parametrize("thresholds", [None, {"collapse_ratio": 1e-5}, {"collapse_before": 0.2}])
def test_lr_collapse_goes_silent_when_its_thresholds_are_loosened(tmp_path, thresholds):
    # Default: below 1 % of the peak at 25 % of the run (after epoch 1 of 4). Loosened: 1e-5 of the peak is only
    # reached after epoch 3 (75 %), and a collapse at 25 % is no longer "before 20 %" of the run.
    callbacks = _suite("lr-schedule", thresholds=thresholds and {"lr-schedule": thresholds})
    report = _run(StepDecay(lr=0.05), tmp_path, callbacks, max_epochs=4, limit_train_batches=5)
    found = serious(report, "lr-schedule")
    if thresholds is None:
        assert len(found) == 1 and found[0]["data"]["ratio"] == lr_history.LR_COLLAPSE_RATIO, report["findings"]
    else:
        assert not found, found


# --------------------------------------------------------------------------- input-scale (borderline, tightened)


@pytest.mark.parametrize("rms_large", [None, 5.0])
def test_raw_digits_pass_at_default_and_fire_when_the_rms_limit_is_tightened(tmp_path, rms_large):
    # sklearn's digits unscaled (0..16): RMS 7.7, every feature's RMS below 13 -- under the defaults 20 and 100.
    x, y = digits()
    x = x * 16
    monitor = DataChecks()
    if rms_large is not None:
        monitor.set_thresholds({"input-scale": {"rms_large": rms_large}})
    report = _run(Classifier(), tmp_path, [monitor, SanitySummary(print_summary=False)],
                  train=loader(x, y), limit_train_batches=4)
    found = serious(report, "input-scale")
    if rms_large is None:
        assert not found, found
    else:
        assert len(found) == 1 and "far from unit scale" in found[0]["message"], report["findings"]


# --------------------------------------------------------------------------- dead-activations (a bug, loosened)


@pytest.mark.parametrize("dead_fraction", [None, 0.97])
def test_mostly_dead_relu_layer_goes_silent_when_the_dead_fraction_is_raised(tmp_path, dead_fraction):
    # 29 of 32 hidden units start with a bias of -10: about 91 % dead, above the default 90 %.
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        net[0].bias[:29].fill_(-10.0)
    thresholds = {"dead-activations": {"dead_fraction": dead_fraction}} if dead_fraction else None
    report = _run(Classifier(net=net), tmp_path, _suite("dead-activations", thresholds=thresholds),
                  limit_train_batches=12)
    found = serious(report, "dead-activations")
    if dead_fraction is None:
        assert len(found) == 1 and 0.9 <= found[0]["data"]["fraction"] < 0.97, report["findings"]
        assert found[0]["data"]["threshold"] == A.DEAD_FRACTION
    else:
        assert not found, found
        assert report["checks"][[c["name"] for c in report["checks"]].index("dead-activations")]["status"] == "pass"


# --------------------------------------------------------------------------- batch-mixing (a bug, loosened)


class Centred(Classifier):
    """Subtracts the batch mean from the input inside forward: each output depends on every sample (leak 0.5)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - x.mean(0, keepdim=True))


@pytest.mark.parametrize("leak_fraction", [None, 0.6])
def test_batch_mixing_goes_silent_when_the_leak_fraction_is_raised(tmp_path, leak_fraction):
    checks = ModelChecks()
    if leak_fraction is not None:
        checks.set_thresholds({"batch-mixing": {"leak_fraction": leak_fraction}})
    report = _run(Centred(), tmp_path, [checks, SanitySummary(print_summary=False)], train=loader(*digits(256)),
                  limit_train_batches=1)
    found = serious(report, "batch-mixing")
    if leak_fraction is None:
        assert len(found) == 1 and 0.4 < found[0]["data"]["leak_fraction"] < 0.6, report["findings"]
    else:
        assert not found, found


# --------------------------------------------------------------------------- initial-loss (a bug, loosened)


@pytest.mark.parametrize("expected_factor", [None, 3.0])
def test_expected_loss_miss_goes_silent_when_the_factor_is_raised(tmp_path, expected_factor):
    # Cross-entropy over 10 classes starts near ln 10 = 2.3: 2.3x the expected 1.0, beyond the default factor 2.
    thresholds = {"initial-loss": {"expected_factor": expected_factor}} if expected_factor else None
    callbacks = lightning_sanity.default_callbacks(disable=_only_these("initial-loss"), thresholds=thresholds,
                                                   expected_loss=1.0, print_summary=False)
    report = _run(Classifier(), tmp_path, callbacks, limit_train_batches=1)
    found = serious(report, "initial-loss")
    if expected_factor is None:
        assert len(found) == 1 and found[0]["data"]["factor"] == LO.EXPECTED_FACTOR, report["findings"]
        assert 2.0 < found[0]["data"]["ratio"] < 3.0
    else:
        assert not found, found


@pytest.mark.parametrize("factor", [None, 1000.0])
def test_overconfident_head_goes_silent_when_the_classification_factor_is_raised(tmp_path, factor):
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        net[2].weight.mul_(100.0)
    inspector = LossInspector()
    if factor is not None:
        inspector.set_thresholds({"initial-loss": {"classification_factor": factor}})
    report = _run(Classifier(net=net), tmp_path, [inspector, SanitySummary(print_summary=False)],
                  limit_train_batches=1)
    found = serious(report, "initial-loss")
    assert bool(found) == (factor is None), report["findings"]


# --------------------------------------------------------------------------- label-distribution (borderline, tightened)


@pytest.mark.parametrize("imbalance_ratio", [None, 2.5])
def test_moderate_imbalance_passes_at_default_and_fires_when_the_ratio_is_tightened(tmp_path, imbalance_ratio):
    # "Digit 0 or 1" against the rest: about 1 to 4, well under the default 10 to 1.
    x, y = digits()
    y = (y < 2).long()
    thresholds = {"label-distribution": {"imbalance_ratio": imbalance_ratio}} if imbalance_ratio else None
    report = _run(Classifier(classes=2), tmp_path, _suite("initial-loss", "label-distribution", thresholds=thresholds),
                  train=loader(x, y), limit_train_batches=4)
    found = serious(report, "label-distribution")
    if imbalance_ratio is None:
        assert not found, found
    else:
        assert len(found) == 1 and "imbalanced" in found[0]["message"], report["findings"]
        assert 2.5 <= found[0]["data"]["imbalance_ratio"] < D.IMBALANCE_RATIO


# --------------------------------------------------------------------------- refused names and values


def test_unknown_threshold_name_is_refused_with_the_valid_names():
    with pytest.raises(ValueError, match=r"thresholds\['dead-activations'\].*'dead'.*dead_fraction"):
        lightning_sanity.default_callbacks(thresholds={"dead-activations": {"dead": 0.5}})
    with pytest.raises(ValueError, match="collapse_ratio, collapse_before"):
        LossDynamics().set_thresholds({"lr-schedule": {"ratio": 1e-3}})


@pytest.mark.parametrize("check, name, value", [
    ("dead-activations", "dead_fraction", 1.5),  # a fraction above 1
    ("batch-mixing", "leak_fraction", 0.0),  # not positive
    ("initial-loss", "mse_factor", 1.0),  # a factor must be above 1
    ("label-distribution", "imbalance_ratio", float("inf")),
    ("input-scale", "rms_large", "20"),
])
def test_out_of_range_value_is_refused_naming_the_threshold(check, name, value):
    with pytest.raises(ValueError, match=f"threshold `{check}.{name}`"):
        lightning_sanity.default_callbacks(thresholds={check: {name: value}})


def test_checks_without_thresholds_and_removed_options_are_refused():
    with pytest.raises(ValueError, match="have no thresholds"):
        lightning_sanity.default_callbacks(thresholds={"train-mode": {"anything": 1.0}})
    with pytest.raises(ValueError, match="has thresholds for: input-scale, label-distribution"):
        DataChecks().set_thresholds({"loss-input": {"tol": 1.0}})
    for removed in ("lr_collapse_ratio", "lr_collapse_before"):  # thresholds of lr-schedule now
        with pytest.raises(ValueError, match="unknown option"):
            lightning_sanity.default_callbacks(**{removed: 0.1})


# --------------------------------------------------------------------------- the list


#: every threshold of these callbacks, with the module constant its default must come from.
DECLARED = {
    "initial-loss": {"classification_factor": LO.CLASSIFICATION_FACTOR,
                     "classification_margin": LO.CLASSIFICATION_MARGIN, "mse_factor": LO.MSE_FACTOR, "linear_factor": LO.LINEAR_FACTOR,
                     "expected_factor": LO.EXPECTED_FACTOR},
    "input-scale": {"rms_large": D.LARGE_RMS, "feature_rms_large": D.LARGE_FEATURE_RMS, "max_small": D.SMALL_MAX},
    "label-distribution": {"imbalance_ratio": D.IMBALANCE_RATIO},
    "batch-mixing": {"leak_fraction": flow.LEAK_TOLERANCE},
    "dead-activations": {"dead_fraction": A.DEAD_FRACTION, "saturated_fraction": A.SATURATED_FRACTION,
                         "tanh_limit": A.TANH_LIMIT, "sigmoid_margin": A.SIGMOID_MARGIN},
    "prediction-jitter": {"flip_fraction": jitter.JITTER_FLIP_THRESHOLD,
                          "change_sd": jitter.JITTER_CHANGE_THRESHOLD},
    "loss-trend": {"rise_factor": loss_trend.RISE_FACTOR, "flat_margin": loss_trend.FLAT_MARGIN,
                   "baseline_margin": loss_trend.BASELINE_MARGIN},
    "lr-schedule": {"collapse_ratio": lr_history.LR_COLLAPSE_RATIO, "collapse_before": lr_history.LR_COLLAPSE_BEFORE},
}


def test_available_thresholds_lists_every_declared_threshold_with_its_constant():
    listed = lightning_sanity.available_thresholds()
    for check, defaults in DECLARED.items():
        assert {name: t.default for name, t in listed[check].items()} == defaults, check
        for name, t in listed[check].items():
            assert t.meaning and t.validate(name, t.default) == t.default  # the default is in its own range
    # No thresholds: these checks compare by identity or exact equality, or have no figure to tune.
    for check in ("train-mode", "loss-input", "optimizer-coverage", "constant-output"):
        assert check not in listed
    # A check reported by two callbacks has a single set of thresholds: PredictionDynamics declares none for the
    # constant-output and train-mode it shares with ModelChecks and TrainModeMonitor.
    assert set(PredictionDynamics.threshold_specs) == {"prediction-jitter"}


def test_thresholds_in_force_are_the_users_else_the_defaults():
    callbacks = lightning_sanity.default_callbacks(thresholds={"loss-trend": {"rise_factor": 3.0}})
    (dynamics_cb,) = [c for c in callbacks if isinstance(c, LossDynamics)]
    assert dynamics_cb.threshold("loss-trend", "rise_factor") == 3.0
    assert dynamics_cb.threshold("loss-trend", "flat_margin") == loss_trend.FLAT_MARGIN
    (activations,) = [c for c in callbacks if isinstance(c, ActivationMonitor)]
    assert activations.threshold("dead-activations", "dead_fraction") == A.DEAD_FRACTION

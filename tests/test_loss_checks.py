"""initial-loss and loss-input in real Trainer runs: each bug fires, healthy models of several kinds stay silent."""

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import (CNN, DictClassifier, DictDataset, FactsProbe, Regressor, RowLSTM, TokenTransformer,
                              my_callbacks, token_loader)
from helpers import Classifier, breast_cancer, diabetes, digits, fit_report, loader, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.loss_inspector import LossInspector

# The data checks run alongside: healthy runs must leave all four fit-start checks silent.
MINE = ("initial-loss", "loss-input", "input-scale", "label-distribution")


def _run(tmp_path, model, train=None, raises=None, probe=None, **kwargs):
    L.seed_everything(0)
    options = {k: kwargs.pop(k) for k in ("expected_loss",) if k in kwargs}
    callbacks = my_callbacks(**options) + ([probe] if probe else [])
    settings = dict(max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0)
    settings.update(kwargs)
    train = train if train is not None else loader(*digits(512))
    return fit_report(tmp_path, model, train, callbacks, raises, **settings)


def _mine(report):
    return [f for f in serious(report) if f["check"] in MINE]


def _check(report, name):
    return next(c for c in report["checks"] if c["name"] == name)


# --------------------------------------------------------------------------- healthy: silent


@pytest.mark.parametrize("net", [None, CNN(), RowLSTM()], ids=["mlp", "cnn-batchnorm", "lstm"])
def test_healthy_classifiers_are_silent(tmp_path, net):
    report = _run(tmp_path, Classifier(net=net))
    assert _mine(report) == []
    assert _check(report, "initial-loss")["status"] == "pass"
    assert "uniform 2.303" in _check(report, "initial-loss")["detail"]


def test_healthy_transformer_on_tokens_is_silent(tmp_path):
    probe = FactsProbe()
    report = _run(tmp_path, TokenTransformer(vocab_size=64), token_loader(64), probe=probe)
    assert _mine(report) == []
    assert _check(report, "initial-loss")["status"] == "pass"
    assert probe.facts["loss_kind"] == "cross_entropy" and probe.facts["num_classes"] == 64


def test_dict_batches_manual_optimization_and_accumulation_are_silent(tmp_path):
    x, y = digits(512)
    data = DataLoader(DictDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert _mine(_run(tmp_path / "manual", DictClassifier(manual=True), data)) == []
    probe = FactsProbe()
    report = _run(tmp_path / "accumulate", DictClassifier(), data, probe=probe, accumulate_grad_batches=3)
    assert _mine(report) == []
    # The training loss handed on is the step's real loss, not the one divided by accumulate_grad_batches.
    assert probe.facts["initial_loss"] == pytest.approx(math.log(10), abs=0.3)
    assert probe.facts["baseline_loss"] < probe.facts["uniform_loss"] == pytest.approx(math.log(10))


def test_regression_with_bias_at_target_mean_or_standardised_targets_is_silent(tmp_path):
    x, y = diabetes()
    report = _run(tmp_path / "bias", Regressor(bias=float(y.mean())), loader(x, y))
    assert _mine(report) == [] and _check(report, "initial-loss")["status"] == "pass"
    ys = (y - y.mean()) / y.std()
    report = _run(tmp_path / "std", Regressor(), loader(x, ys))
    assert _mine(report) == [] and _check(report, "initial-loss")["status"] == "pass"
    l1 = _run(tmp_path / "l1", Regressor(loss_fn=lambda p, t: F.l1_loss(p.squeeze(-1), t)), loader(x, ys))
    assert _mine(l1) == []


def test_binary_classification_with_logits_is_silent(tmp_path):
    x, y = breast_cancer()
    model = Classifier(in_features=30, classes=1, loss_fn=lambda o, t: F.binary_cross_entropy_with_logits(o.squeeze(-1), t))
    report = _run(tmp_path, model, loader(x, y))
    assert _mine(report) == []
    assert "ln 2" not in _check(report, "initial-loss")["detail"]  # figures, not formulas
    assert "uniform 0.6931" in _check(report, "initial-loss")["detail"]


# --------------------------------------------------------------------------- initial-loss fires


def test_overconfident_last_layer_fires_with_bias_advice(tmp_path):
    model = Classifier()
    with torch.no_grad():
        model.net[2].weight.mul_(100)
    report = _run(tmp_path, model)
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"], finding["where"]) == ("initial-loss", "warning", "net.2")
    assert finding["data"]["initial_loss"] > 2 * math.log(10)
    assert "net.2.bias" in finding["advice"] and "log class frequencies" in finding["advice"]
    assert len(finding["data"]["best_bias"]) == 10


def test_unstandardised_regression_targets_fire_with_the_target_mean(tmp_path):
    x, y = diabetes()
    report = _run(tmp_path, Regressor(), loader(x, y))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"], finding["where"]) == ("initial-loss", "warning", "net.2")
    mean = finding["data"]["best_bias"][0]
    assert 120 < mean < 190  # the batch's target mean (the data set's is 152)
    assert f"Set the output bias to {mean:.4g}" in finding["advice"]
    assert finding["data"]["initial_loss"] > 3 * finding["data"]["baseline_loss"]


def test_loss_multiplied_by_zero_fires(tmp_path):
    report = _run(tmp_path, Classifier(loss_fn=lambda o, y: 0.0 * F.cross_entropy(o, y)))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"]) == ("initial-loss", "error")
    assert "exactly 0" in finding["message"]


def test_negated_loss_fires_at_the_first_step(tmp_path):
    report = _run(tmp_path, Classifier(loss_fn=lambda o, y: -F.cross_entropy(o, y)))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"], finding["global_step"]) == ("initial-loss", "error", 0)
    assert "negation of its cross_entropy term" in finding["message"] and finding["where"] == "net.2"


def test_loss_detached_from_the_model_fires_before_backward_raises(tmp_path):
    model = Classifier(loss_fn=lambda o, y: F.cross_entropy(o.detach(), y))
    report = _run(tmp_path, model, raises=RuntimeError)
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"]) == ("initial-loss", "error")
    assert "does not depend" in finding["message"]


def test_unrecognised_loss_is_skipped_with_a_reason_and_expected_loss_judges_it(tmp_path):
    def custom(o, y):  # a hand-written cross-entropy the inspector cannot recognise
        return -(o.log_softmax(-1).gather(1, y[:, None])).mean()

    report = _run(tmp_path / "skip", Classifier(loss_fn=custom))
    check = _check(report, "initial-loss")
    assert check["status"] == "skipped" and "expected_loss" in check["detail"]
    assert _run(tmp_path / "ok", Classifier(loss_fn=custom), expected_loss=math.log(10))["status"] == "pass"
    report = _run(tmp_path / "far", Classifier(loss_fn=custom), expected_loss=0.5)
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"]) == ("initial-loss", "warning")


def test_expected_loss_is_validated():
    with pytest.raises(ValueError, match="expected_loss"):
        LossInspector(expected_loss=float("nan"))
    with pytest.raises(ValueError, match="expected_loss"):
        LossInspector(expected_loss="2.3")
    with pytest.raises(ValueError, match="get_target"):
        LossInspector(get_target="y")


def test_the_facts_say_whether_the_loss_compares_with_the_batch_target(tmp_path):
    x, y = digits(512)
    probe = FactsProbe()
    # Dict batches: the target is found by key and given to the loss as it is.
    data = DataLoader(DictDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    _run(tmp_path / "dict", DictClassifier(), data, probe=probe)
    assert probe.facts["loss_target_is_batch_target"] is True
    probe = FactsProbe()
    # A target the step makes itself (one-hot here): not the batch's labels.
    onehot = Classifier(loss_fn=lambda o, t: F.binary_cross_entropy_with_logits(o, F.one_hot(t, 10).float()))
    assert _mine(_run(tmp_path / "onehot", onehot, loader(x, y), probe=probe)) == []
    assert probe.facts["loss_kind"] == "binary_cross_entropy" and probe.facts["loss_target_is_batch_target"] is False


def test_class_weighted_cross_entropy_hands_over_ln_c_as_the_baseline(tmp_path):
    # One batch's weighted label frequencies are too noisy for the best constant: the upper bound ln C goes on.
    x, y = digits(512)
    weights = torch.linspace(0.2, 5.0, 10)
    probe = FactsProbe()
    report = _run(tmp_path, Classifier(loss_fn=lambda o, t: F.cross_entropy(o, t, weight=weights)), loader(x, y),
                  probe=probe)
    assert _mine(report) == []
    assert probe.facts["baseline_loss"] == pytest.approx(math.log(10), rel=1e-3)


# --------------------------------------------------------------------------- loss-input fires


def test_softmax_fed_to_cross_entropy_fires(tmp_path):
    report = _run(tmp_path, Classifier(loss_fn=lambda o, y: nn.CrossEntropyLoss()(o.softmax(-1), y)))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"], finding["where"]) == ("loss-input", "warning", "net.2")
    assert "probabilities" in finding["message"]


def test_sigmoid_fed_to_bce_with_logits_and_raw_scores_to_nll_fire(tmp_path):
    x, y = breast_cancer()
    model = Classifier(in_features=30, classes=1,
                       loss_fn=lambda o, t: nn.BCEWithLogitsLoss()(torch.sigmoid(o).squeeze(-1), t))
    (finding,) = _mine(_run(tmp_path / "bce", model, loader(x, y)))
    assert (finding["check"], finding["where"]) == ("loss-input", "net.2") and "sigmoid" in finding["message"]
    (finding,) = _mine(_run(tmp_path / "nll", Classifier(loss_fn=F.nll_loss)))
    assert finding["check"] == "loss-input" and "log_softmax" in finding["advice"]


def test_regression_shapes_that_broadcast_fire_naming_the_shapes(tmp_path):
    x, y = diabetes()
    ys = (y - y.mean()) / y.std()
    report = _run(tmp_path, Regressor(loss_fn=F.mse_loss), loader(x, ys))
    (finding,) = _mine(report)
    assert (finding["check"], finding["severity"], finding["where"]) == ("loss-input", "error", "net.2")
    assert "(64, 1)" in finding["message"] and "(64,)" in finding["message"] and "(64, 64)" in finding["message"]


def test_class_index_out_of_range_reaches_the_summary_although_the_call_raises(tmp_path):
    report = _run(tmp_path, Classifier(classes=8), raises=IndexError)
    (finding,) = [f for f in _mine(report) if f["check"] == "loss-input"]
    assert (finding["check"], finding["severity"], finding["where"]) == ("loss-input", "error", "net.2")
    assert finding["data"]["max_label"] == 9 and finding["data"]["num_classes"] == 8
    assert report["status"] == "fail"
    # The data checks see the same labels against the width the loss call handed on.
    assert [f["severity"] for f in _mine(report) if f["check"] == "label-distribution"] == ["error"]


def test_watcher_is_gone_after_the_first_step(tmp_path):
    _run(tmp_path, Classifier())
    assert torch.overrides._get_current_function_mode_stack() == []


# --------------------------------------------------------------------------- regression: what an untrained net outputs


def _log_counts(shift=0.0):
    """Diabetes features, targets log1p of Poisson counts (centred near 1.6, spread about 0.5), plus ``shift``."""
    x, y = diabetes()
    gen = torch.Generator().manual_seed(0)
    counts = torch.poisson(torch.exp(0.3 * x[:, 2] + 1.5), generator=gen)
    return x, torch.log1p(counts) + shift


@pytest.mark.parametrize("loss", ["l1", "mse"])
def test_targets_within_unit_reach_of_an_untrained_output_are_silent(tmp_path, loss):
    # Output near 0, targets centred on ~1.6: 3x the best constant's L1, yet ordinary learning of the bias.
    fn = (lambda p, t: F.l1_loss(p.squeeze(-1), t)) if loss == "l1" else (lambda p, t: F.mse_loss(p.squeeze(-1), t))
    report = _run(tmp_path, Regressor(loss_fn=fn), loader(*_log_counts()))
    assert _mine(report) == [] and _check(report, "initial-loss")["status"] == "pass"
    assert "starts at the zero prediction" in _check(report, "initial-loss")["detail"]


def test_targets_beyond_unit_reach_fire_naming_the_gap(tmp_path):
    # The same targets 20 units away from 0 (an unstandardised scale): no unit-scale network closes that quickly.
    report = _run(tmp_path, Regressor(loss_fn=lambda p, t: F.l1_loss(p.squeeze(-1), t)), loader(*_log_counts(20.0)))
    (finding,) = _mine(report)
    assert finding["check"] == "initial-loss" and finding["data"]["centre_gap"] > 20
    assert finding["data"]["start"] == "uniform" and "starts at the zero prediction" in finding["message"]


def test_an_overconfident_start_is_named_against_both_references(tmp_path):
    # Imbalanced digits (label prior far from uniform) and a last layer scaled up: above both references.
    x, y = digits()
    keep = torch.cat([torch.where(y == 0)[0], torch.where(y != 0)[0][:200]])
    model = Classifier()
    with torch.no_grad():
        model.net[2].weight.mul_(100)
    report = _run(tmp_path, model, loader(x[keep], y[keep]))
    (finding,) = [f for f in _mine(report) if f["check"] == "initial-loss"]
    assert finding["data"]["start"] == "above"
    assert "starts above both the uniform prediction" in finding["message"] and "the label prior" in finding["message"]
    assert finding["data"]["baseline_loss"] < finding["data"]["uniform_loss"] - 0.2  # two distinct references

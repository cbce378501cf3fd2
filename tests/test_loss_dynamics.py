"""loss-trend and lr-schedule on real Trainer runs: each bug fires, healthy runs of several kinds stay silent."""

import math

import lightning as L
import pytest
import torch
from _models_dynamics import (
    FactsFromInitialLoss,
    GradientAscent,
    NegatedLoss,
    Regressor,
    RowLSTM,
    Scheduled,
    TinyLM,
    ZeroWeightedLoss,
    cnn,
    counting_tokens,
    diabetes_loaders,
)
from helpers import Classifier, CrashingClassifier, digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.loss_dynamics import LossDynamics
from lightning_sanity.callbacks.summary import SanitySummary


pytestmark = pytest.mark.usefixtures("one_thread")


def _run(model, tmp_path, train=None, val=None, facts=True, max_epochs=3, **kwargs):
    L.seed_everything(0)
    # By default the real initial-loss check hands loss-trend its baseline, as in default_callbacks().
    callbacks = [LossInspector()] if facts is True else ([facts] if facts else [])
    callbacks += [LossDynamics(), SanitySummary(print_summary=False)]
    trainer = fit(model, tmp_path, train, val, callbacks=callbacks, max_epochs=max_epochs, **kwargs)
    return read_report(trainer.log_dir)


def _only(report, check):
    found = serious(report, check)
    assert len(found) == 1, report["findings"]
    return found[0]


def _check(report, name):
    return next(c for c in report["checks"] if c["name"] == name)


# --------------------------------------------------------------------------- loss-trend fires


def test_negated_loss_is_reported(tmp_path):
    report = _run(NegatedLoss(lr=1e-2), tmp_path)
    finding = _only(report, "loss-trend")
    assert finding["severity"] == "error" and finding["where"] is None
    assert finding["data"]["pattern"] == "negative"
    assert "100% of the planned training seen" in finding["message"]


class UncertaintyWeighted(Classifier):
    """Kendall et al.'s homoscedastic uncertainty weighting, `exp(-s) * CE + s` with a learned `s`: the total
    settles near `1 + ln(CE)`, below zero once the cross-entropy is under 1/e."""

    def __init__(self, negate: bool = False):
        super().__init__(lr=1e-2)
        self.log_var = nn.Parameter(torch.zeros(()))
        self.negate = negate

    def training_step(self, batch, batch_idx):
        x, y = batch
        ce = nn.functional.cross_entropy(self(x), y)
        return -ce if self.negate else torch.exp(-self.log_var) * ce + self.log_var

    def configure_optimizers(self):
        return torch.optim.Adam([{"params": self.net.parameters()}, {"params": [self.log_var], "lr": 0.1}],
                                lr=self.lr)


def test_uncertainty_weighted_loss_below_zero_is_silent(tmp_path):
    report = _run(UncertaintyWeighted(), tmp_path)
    assert _check(report, "loss-trend")["status"] == "pass", report["checks"]
    assert " -" in _check(report, "loss-trend")["detail"]  # it did end below zero
    # The same model with its loss negated is still the sign flip.
    flipped = _only(_run(UncertaintyWeighted(negate=True), tmp_path / "flipped"), "loss-trend")
    assert flipped["data"]["pattern"] == "negative" and "cannot be negative" in flipped["message"]


def test_gradient_ascent_is_reported_as_rising(tmp_path):
    report = _run(GradientAscent(lr=0.05), tmp_path)
    finding = _only(report, "loss-trend")
    assert finding["data"]["pattern"] == "rising"
    assert max(finding["data"]["tail_median"], finding["data"]["tail_mean"]) > 2 * finding["data"]["head_median"]


def test_shuffled_labels_never_beat_the_baseline(tmp_path):
    x, y = digits()
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    report = _run(Classifier(lr=1e-2), tmp_path, loader(x[:1437], y[:1437]), loader(x[1437:], y[1437:], shuffle=False))
    finding = _only(report, "loss-trend")
    assert finding["data"]["pattern"] in ("baseline", "flat")
    assert finding["data"]["tail_median"] > 0.95 * math.log(10)
    assert "baseline" in finding["message"]


def test_zero_weighted_loss_is_flat(tmp_path):
    report = _run(ZeroWeightedLoss(), tmp_path, facts=None)
    finding = _only(report, "loss-trend")
    assert finding["data"]["pattern"] == "flat" and "exactly constant" in finding["message"]


def test_crash_early_in_the_run_is_not_judged(tmp_path):
    model = CrashingClassifier(RuntimeError("boom"), at_step=8, loss_fn=lambda o, y: -nn.functional.cross_entropy(o, y))
    with pytest.raises(RuntimeError):
        _run(model, tmp_path, max_epochs=5)
    report = read_report(tmp_path / "logs" / "version_0")
    assert not serious(report, "loss-trend")
    assert _check(report, "loss-trend")["status"] == "skipped"
    assert "too little" in _check(report, "loss-trend")["detail"]


def test_gradient_accumulation_reads_the_whole_loss(tmp_path):
    report = _run(Classifier(lr=1e-2), tmp_path, accumulate_grad_batches=2)
    detail = _check(report, "loss-trend")["detail"]
    # The head median is the real initial cross-entropy (about ln 10), not half of it.
    assert detail.startswith("loss 2.") and not serious(report)


# --------------------------------------------------------------------------- lr-schedule


def test_step_lr_decaying_100x_per_epoch_is_reported(tmp_path):
    report = _run(Scheduled("step100", lr=0.05), tmp_path, max_epochs=4)
    finding = _only(report, "lr-schedule")
    assert finding["severity"] == "warning"
    assert finding["where"] == "optimizers[0].param_groups[0]"
    assert finding["data"]["collapsed_at_fraction"] < 0.5


@pytest.mark.parametrize("schedule", ["cosine", "warmup"])
def test_schedules_that_decay_as_planned_are_silent(tmp_path, schedule):
    report = _run(Scheduled(schedule, lr=0.05), tmp_path)
    assert not serious(report), report["findings"]
    assert _check(report, "lr-schedule")["status"] == "pass"


# --------------------------------------------------------------------------- healthy runs stay silent


@pytest.mark.parametrize("net", ["mlp", "cnn", "lstm", "dropout"])
def test_healthy_classifiers_are_silent(tmp_path, net):
    nets = {
        "mlp": None,
        "cnn": cnn(),
        "lstm": RowLSTM(),
        # heavy dropout: a noisy loss that still comes down
        "dropout": nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.7), nn.Linear(128, 10)),
    }
    report = _run(Classifier(net=nets[net], lr=3e-3), tmp_path)
    assert not serious(report), report["findings"]
    assert _check(report, "loss-trend")["status"] == "pass"


def test_healthy_regression_is_silent(tmp_path):
    train, val = diabetes_loaders()
    report = _run(Regressor(), tmp_path, train, val, facts=FactsFromInitialLoss("mse", 0, baseline_loss=1.0),
                  max_epochs=8)
    assert not serious(report), report["findings"]


def test_healthy_transformer_is_silent(tmp_path):
    x, y = counting_tokens()
    report = _run(TinyLM(), tmp_path, loader(x[:448], y[:448], 32), loader(x[448:], y[448:], 32, shuffle=False),
                  facts=FactsFromInitialLoss("nll", 16), max_epochs=2)
    assert not serious(report), report["findings"]


def test_fine_tuning_that_starts_low_is_silent(tmp_path):
    # A converged model fine-tuned further: low and nearly flat from the start, far below the baseline.
    L.seed_everything(0)
    model = Classifier(lr=1e-2)
    fit(model, tmp_path / "pretrain", callbacks=[], max_epochs=6)
    model.lr = 1e-4
    report = _run(model, tmp_path / "finetune", max_epochs=2)
    assert not serious(report), report["findings"]


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="collapse_ratio"):
        LossDynamics().set_thresholds({"lr-schedule": {"collapse_ratio": 0}})
    with pytest.raises(ValueError, match="loss_trend_min_progress"):
        LossDynamics(loss_trend_min_progress=1.5)
    with pytest.raises(TypeError):
        LossDynamics(lr_collapse_ratio=1e-3)  # a threshold now: `thresholds={"lr-schedule": {...}}`


def test_negated_loss_is_reported_without_knowing_the_loss_function(tmp_path):
    report = _run(NegatedLoss(lr=1e-2), tmp_path, facts=None)
    assert _only(report, "loss-trend")["data"]["pattern"] == "negative"


def _log_likelihood(logits, y):
    return nn.functional.log_softmax(logits, -1).gather(1, y[:, None]).mean()  # the minus sign forgotten


def test_log_likelihood_minimised_as_it_is_is_a_sign_flip(tmp_path):
    # One epoch: the loss falls from -2.3 to a few units below, far from the "order of magnitude" a loss of unknown
    # kind needs; the graph says what it is.
    report = _run(Classifier(lr=1e-3, loss_fn=_log_likelihood), tmp_path, max_epochs=1)
    finding = _only(report, "loss-trend")
    assert finding["data"]["pattern"] == "negative" and "log-probability of the targets" in finding["message"]
    # The same log-likelihood with its minus sign, and one weighted by per-sample costs (a policy gradient), are not.
    for name, loss_fn in [("negated", lambda out, y: -_log_likelihood(out, y)),
                          ("weighted", lambda out, y: (nn.functional.log_softmax(out, -1).gather(1, y[:, None])[:, 0]
                                                       * (y.float() + 1) / 10).mean())]:
        report = _run(Classifier(lr=1e-3, loss_fn=loss_fn), tmp_path / name, max_epochs=1)
        assert "log-probability" not in str(report["findings"]), (name, report["findings"])


def _with_validation(tmp_path, make_model, x, y, split, max_epochs, seed):
    from lightning_sanity.callbacks.val_divergence import ValDivergence

    L.seed_everything(seed)
    trainer = fit(make_model(), tmp_path, loader(x[:split], y[:split], batch_size=32), loader(x[split:], y[split:], 128, False),
                  callbacks=[LossInspector(), ValDivergence(), LossDynamics(), SanitySummary(print_summary=False)],
                  max_epochs=max_epochs, log_every_n_steps=10)
    return read_report(trainer.log_dir)


def test_slow_run_is_learning_when_validation_falls_below_the_baseline(tmp_path):
    # Adam 1e-4 for two epochs: the training loss ends 1.8 % below ln 10 (flat by its own figures), while the
    # validation loss falls at every run, 2.32 -> 2.28 -> 2.25: the model generalises, it is only slow.
    x, y = digits()
    keep = torch.cat([torch.nonzero(y != 0).squeeze(1), torch.nonzero(y == 0).squeeze(1)[:15]])
    keep = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(0))]
    x, y = x[keep], y[keep]
    counts = torch.bincount(y[:1300], minlength=10).float()
    weights = counts.sum() / (10 * counts)

    def make_model():
        return Classifier(net=nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)), lr=1e-4,
                          loss_fn=lambda out, t: nn.functional.cross_entropy(out, t, weight=weights))

    report = _with_validation(tmp_path, make_model, x, y, 1300, 2, 129)
    assert not serious(report, "loss-trend"), report["findings"]
    assert _check(report, "loss-trend")["status"] == "pass"


def test_shuffled_labels_with_validation_still_never_beat_the_baseline(tmp_path):
    x, y = digits()
    y = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    report = _with_validation(tmp_path, lambda: Classifier(lr=1e-2), x, y, 1437, 3, 0)
    assert _only(report, "loss-trend")["data"]["pattern"] in ("baseline", "flat")

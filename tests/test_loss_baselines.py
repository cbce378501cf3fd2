"""Input-independent baselines for every recognised loss, the start they name, and the target-side loss-input
findings: formulas checked against PyTorch's own losses, then real Trainer runs (bug fires, healthy twin silent)."""

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import my_callbacks
from helpers import Classifier, breast_cancer, diabetes, digits, fit_report, loader, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.loss_inspector import LossInspector
from lightning_sanity.callbacks.predictions import PredictionDynamics
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks import loss_expectations as LE
from lightning_sanity.checks import losses as LS

MINE = ("initial-loss", "loss-input", "input-scale", "label-distribution")


def _expect(func, *args, **kwargs):
    return LE.expected_losses(LS.bind_loss_call(func, args, kwargs))


# --------------------------------------------------------------------------- formulas against PyTorch


@pytest.mark.parametrize("weight,smoothing", [(None, 0.0), ([0.3, 1.2, 3.0, 8.0], 0.0), (None, 0.2),
                                              ([0.3, 1.2, 3.0, 8.0], 0.2)])
def test_cross_entropy_baseline_is_the_loss_of_the_best_constant(weight, smoothing):
    g = torch.Generator().manual_seed(0)
    y = torch.multinomial(torch.tensor([0.7, 0.2, 0.07, 0.03]), 400, replacement=True, generator=g)
    y[:25] = -100
    w = None if weight is None else torch.tensor(weight)
    e = _expect(F.cross_entropy, torch.zeros(400, 4), y, weight=w, label_smoothing=smoothing)
    best = torch.tensor(e.best_bias).expand(400, 4)
    assert e.baseline == pytest.approx(F.cross_entropy(best, y, weight=w, label_smoothing=smoothing).item(), abs=2e-3)
    assert e.uniform == pytest.approx(F.cross_entropy(torch.zeros(400, 4), y, weight=w, label_smoothing=smoothing).item(),
                                      abs=1e-5)
    # no constant does better
    for _ in range(20):
        other = best + 0.1 * torch.randn(4, generator=g)
        assert F.cross_entropy(other, y, weight=w, label_smoothing=smoothing).item() >= e.baseline - 2e-3
    assert e.formula


def test_soft_kl_and_gaussian_baselines_match_pytorch():
    g = torch.Generator().manual_seed(1)
    soft = torch.softmax(torch.randn(300, 5, generator=g), 1)
    e = _expect(F.cross_entropy, torch.zeros(300, 5), soft, label_smoothing=0.1)
    assert e.baseline == pytest.approx(F.cross_entropy(torch.tensor(e.best_bias).expand(300, 5).double(), soft.double(),
                                                       label_smoothing=0.1).item(), abs=2e-3)
    for reduction in ("batchmean", "sum"):
        e = _expect(F.kl_div, torch.zeros(300, 5), soft, reduction=reduction)
        best = F.kl_div(torch.tensor(e.best_bias).expand(300, 5), soft, reduction=reduction).item()
        per = 1.0 if reduction == "batchmean" else 1.0 / soft.numel()
        assert e.baseline == pytest.approx(best * per, abs=2e-3)
    y = 3 * torch.randn(400, 2, generator=g) + 1
    e = _expect(F.gaussian_nll_loss, torch.zeros(400, 2), y, torch.ones(400, 2), full=True)
    best = F.gaussian_nll_loss(y.mean(0).expand(400, 2), y, y.var(0, unbiased=False).expand(400, 2), full=True).item()
    assert e.baseline == pytest.approx(best, abs=1e-4) and "ln var(y)" in e.formula
    assert e.uniform == pytest.approx(F.gaussian_nll_loss(torch.zeros(400, 2), y, torch.ones(400, 2), full=True).item(),
                                      abs=1e-4)


def test_no_formula_means_the_baseline_is_unknown():
    assert _expect(F.cross_entropy, torch.zeros(4, 2), torch.tensor([[1.5, -0.5]] * 4)) is None
    assert _expect(F.binary_cross_entropy_with_logits, torch.zeros(4), torch.tensor([-1.0, 1.0, 0.0, 1.0])) is None


# --------------------------------------------------------------------------- real Trainer runs


def _run(tmp_path, model, train=None, callbacks=None, **kwargs):
    L.seed_everything(0)
    settings = dict(max_epochs=1, limit_train_batches=3, num_sanity_val_steps=0)
    settings.update(kwargs)
    train = train if train is not None else loader(*digits(512))
    return fit_report(tmp_path, model, train, callbacks or my_callbacks(), **settings)


def _check(report, name):
    return next(c for c in report["checks"] if c["name"] == name)


def _mine(report, check=None):
    return [f for f in serious(report) if f["check"] in MINE and (check is None or f["check"] == check)]


def test_initial_loss_names_the_uniform_start_and_the_weighted_smoothed_baseline(tmp_path):
    weight = torch.linspace(0.5, 2.0, 10)
    report = _run(tmp_path, Classifier(loss_fn=lambda o, t: F.cross_entropy(o, t, weight=weight, label_smoothing=0.1)))
    assert _mine(report) == []
    detail = _check(report, "initial-loss")["detail"]
    assert "starts at the uniform prediction" in detail and "a_c = w_c((1-eps) n_c + eps N/C)" in detail, detail


class _PriorBinary(Classifier):
    """Breast cancer, BCE on logits; the output bias at the positive rate (``prior=True``) or at 0."""

    def __init__(self, rate=None):
        super().__init__(in_features=30, classes=1,
                         loss_fn=lambda o, t: F.binary_cross_entropy_with_logits(o.squeeze(-1), t))
        if rate is not None:
            with torch.no_grad():
                self.net[2].weight.mul_(0.01)
                self.net[2].bias.fill_(math.log(rate / (1 - rate)))


def test_a_prior_initialised_bias_starts_at_the_label_prior(tmp_path):
    x, y = breast_cancer()
    x = (x - x.mean(0)) / x.std(0)
    keep = torch.cat([torch.where(y == 1)[0][:300], torch.where(y == 0)[0][:60]])
    x, y = x[keep], y[keep].float()
    report = _run(tmp_path, _PriorBinary(rate=float(y.mean())), loader(x, y))
    detail = _check(report, "initial-loss")["detail"]
    assert "starts at the label prior" in detail and _mine(report, "initial-loss") == [], detail
    report = _run(tmp_path / "uniform", _PriorBinary(), loader(x, y))
    assert "starts at the 0.5 prediction" in _check(report, "initial-loss")["detail"]


def _three_digits():
    x, y = digits()
    keep = y < 3
    return x[keep], y[keep]


@pytest.mark.parametrize("classes,smoothing,severity", [(10, 0.1, "warning"), (10, 0.0, "info"), (3, 0.1, None)])
def test_a_head_wider_than_the_labels(tmp_path, classes, smoothing, severity):
    model = Classifier(classes=classes, loss_fn=lambda o, t: F.cross_entropy(o, t, label_smoothing=smoothing))
    report = _run(tmp_path, model, loader(*_three_digits()))
    found = [f for f in report["findings"] if f["check"] == "label-distribution" and "never occur" in f["message"]]
    if severity is None:
        assert found == [] and _mine(report) == []
        return
    (finding,) = found
    assert finding["severity"] == severity and finding["data"]["unused"] == 7
    assert finding["data"]["smoothing_mass_on_unused"] == pytest.approx(smoothing * 0.7)
    assert [f for f in _mine(report) if "never occur" not in f["message"]] == []


@pytest.mark.parametrize("classes", [10, 3])
def test_a_head_wider_than_the_labels_is_told_from_a_few_small_batches(tmp_path, classes):
    # 3 batches of 16 labels: too few to say that one class of ten never occurs, plenty to say that seven do not.
    model = Classifier(classes=classes, loss_fn=lambda o, t: F.cross_entropy(o, t, label_smoothing=0.2))
    report = _run(tmp_path, model, loader(*_three_digits(), batch_size=16))
    found = [f for f in report["findings"] if f["check"] == "label-distribution" and "never occur" in f["message"]]
    if classes == 3:
        assert found == [] and _mine(report) == []
        return
    (finding,) = found
    assert finding["severity"] == "warning" and finding["data"]["labels"] == 48 and finding["data"]["unused"] == 7


def _multilabel(n=384):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 16, generator=g)
    y = (x[:, :4] + 0.3 * torch.randn(n, 4, generator=g) > 0).float()
    return x, y


@pytest.mark.parametrize("bug", [True, False], ids=["cross_entropy-on-multi-hot", "bce"])
def test_multi_hot_targets_fed_to_cross_entropy(tmp_path, bug):
    loss = F.cross_entropy if bug else F.binary_cross_entropy_with_logits
    report = _run(tmp_path, Classifier(in_features=16, classes=4, loss_fn=loss), loader(*_multilabel()))
    found = _mine(report, "loss-input")
    if bug:
        assert len(found) == 1 and found[0]["severity"] == "error" and found[0]["data"]["multi_hot"]
        assert "binary_cross_entropy_with_logits" in found[0]["advice"]
    else:
        assert _mine(report) == []


class _Distilled(Classifier):
    """A student matching a fixed random teacher's softmax on digits with kl_div."""

    def __init__(self, bug):
        super().__init__()
        self.teacher = nn.Linear(64, 10).requires_grad_(False)
        self.bug = bug

    def training_step(self, batch, batch_idx):
        x, _ = batch
        target = F.softmax(self.teacher(x), -1)
        out = self(x)
        student = F.softmax(out, -1) if self.bug else F.log_softmax(out, -1)
        return F.kl_div(student, target, reduction="batchmean")


@pytest.mark.parametrize("bug", [True, False], ids=["probabilities", "log-probabilities"])
def test_kl_div_fed_probabilities(tmp_path, bug):
    report = _run(tmp_path, _Distilled(bug))
    found = _mine(report, "loss-input")
    if bug:
        assert len(found) == 1 and found[0]["data"]["what"] == "probabilities", found
        assert "log_softmax" in found[0]["advice"]
    else:
        assert _mine(report) == [] and "KL(t_i || t_bar)" in _check(report, "initial-loss")["detail"]


class _GaussianRegressor(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        mean, log_var = self.net(x).unbind(-1)
        return F.gaussian_nll_loss(mean, y, log_var.exp())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_gaussian_nll_regression_is_silent_with_its_baseline(tmp_path):
    x, y = diabetes()
    report = _run(tmp_path, _GaussianRegressor(), loader((x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()))
    assert _mine(report) == []
    assert "0.5 (ln var(y) + 1)" in _check(report, "initial-loss")["detail"]


class _LogGapRegressor(L.LightningModule):
    """A log-normal time head: the mean and a softplus scale, as an event model predicts its next gap."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        mean, raw = self.net(x).unbind(-1)
        return F.gaussian_nll_loss(mean, y, (F.softplus(raw) + 1e-3) ** 2, full=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("raw", [False, True])
def test_gaussian_nll_start_is_judged_against_what_an_untrained_head_gives(tmp_path, raw):
    x, y = diabetes()
    x = (x - x.mean(0)) / x.std(0)
    # Log gaps centred on -2 (3 nats above the best constant at init, within reach), or raw targets centred on 152.
    y = y if raw else (y - y.mean()) / y.std() * 0.5 - 2.0
    report = _run(tmp_path, _LogGapRegressor(), loader(x, y))
    found = _mine(report, "initial-loss")
    assert bool(found) is raw
    if raw:
        assert "nats above" in found[0]["message"]


def test_class_weighted_loss_on_imbalanced_labels_is_only_info(tmp_path):
    x, y = digits()
    keep = torch.cat([torch.where(y == 0)[0][:30], torch.where(y != 0)[0][:600]])
    x, y = x[keep], (y[keep] == 0).float()
    for pos_weight, severity in ((torch.tensor(20.0), "info"), (None, "warning")):
        model = Classifier(classes=1, loss_fn=lambda o, t, p=pos_weight: F.binary_cross_entropy_with_logits(
            o.squeeze(-1), t, pos_weight=p))
        report = _run(tmp_path / str(severity), model, loader(x, y), limit_train_batches=4)
        (finding,) = [f for f in report["findings"] if "imbalanced" in f["message"]]
        assert finding["severity"] == severity, finding


class _Tagger(L.LightningModule):
    """Token tagging with most positions padding (label 0 = ignore_index)."""

    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(20, 16), nn.Linear(16, 5)

    def forward(self, tokens):
        return self.head(self.embed(tokens))

    def training_step(self, batch, batch_idx):
        tokens, tags = batch
        return F.cross_entropy(self(tokens).transpose(1, 2), tags, ignore_index=0)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def test_jitter_counts_only_supervised_tokens(tmp_path):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(1, 20, (256, 40), generator=g)
    tags = tokens % 4 + 1
    tags[:, 1:] = 0  # one supervised token per sequence: 16 in a fixed batch of 16
    tokens[:, 1:] = 0
    train = DataLoader(TensorDataset(tokens, tags), batch_size=16, shuffle=True, generator=g)
    callbacks = [LossInspector(), PredictionDynamics(), SanitySummary(print_summary=False)]
    report = _run(tmp_path, _Tagger(), train, callbacks=callbacks, max_epochs=3, limit_train_batches=None)
    check = _check(report, "prediction-jitter")
    assert check["status"] == "skipped" and "16 supervised tokens" in check["detail"], check


def test_loss_trend_baseline_applies_weights_and_smoothing_to_every_counted_label():
    from lightning_sanity.checks.loss_baseline import trend_baseline
    from lightning_sanity.checks.loss_priors import cross_entropy_prior

    counts, weight = [700, 200, 70, 30], [0.36, 1.25, 3.57, 8.33]
    facts = {"loss_kind": "cross_entropy", "num_classes": 4, "label_counts": counts, "baseline_from_label_prior": True,
             "class_weight": weight, "label_smoothing": 0.1, "baseline_loss": 1.0}
    value, how = trend_baseline(facts)
    prior = cross_entropy_prior(counts, weight, 0.1)
    assert prior.value < value <= prior.uniform  # bias-corrected upwards, never above the uniform prediction
    assert "1000 labels" in how and "a_c = w_c" in how
    plain, how = trend_baseline({**facts, "class_weight": None, "label_smoothing": 0.0})
    assert plain < value and how.startswith("label-prior entropy")


def test_bf16_soft_targets_and_log_probabilities_are_not_flagged():
    from lightning_sanity.checks.loss_inputs import kl_div_input_problem, soft_target_problem

    logits = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))
    soft = torch.softmax(logits, -1).bfloat16()
    assert soft_target_problem(soft) is None
    assert kl_div_input_problem(torch.log_softmax(logits, -1).bfloat16(), soft) is None
    assert soft_target_problem((soft > 0.1).bfloat16() + 0)["multi_hot"] in (True, False)

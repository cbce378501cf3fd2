"""loss-input on poisson_nll_loss in real Trainer runs: a rate head (Softplus) read as a log-rate fires when the
counts need rates below 1; a log-rate head, a rate head with log_input=False, and a Softplus head on counts whose
rates are all >= 1 stay silent."""

import lightning as L
import pytest
import torch
from _models_fitstart import my_callbacks
from helpers import fit_report, loader, serious
from torch import nn

from lightning_sanity.checks.loss_inputs import poisson_rate_floor_problem, poisson_tally


def _counts(offset):
    """Tabular counts with a learnable log-rate ``offset + 0.7 x0 - 0.5 x1`` (offset -0.6: mostly 0 and 1)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(512, 8, generator=gen)
    return x, torch.poisson(torch.exp(offset + 0.7 * x[:, 0] - 0.5 * x[:, 1]), generator=gen)


class CountNet(L.LightningModule):
    def __init__(self, softplus, log_input=True):
        super().__init__()
        layers = [nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1)] + ([nn.Softplus()] if softplus else [])
        self.net = nn.Sequential(*layers)
        self.loss_fn = nn.PoissonNLLLoss(log_input=log_input)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return self.loss_fn(self.net(x).squeeze(-1), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _run(tmp_path, model, offset=-0.6):
    L.seed_everything(0)
    return fit_report(tmp_path, model, loader(*_counts(offset)), my_callbacks(), max_epochs=1,
                      limit_train_batches=4, num_sanity_val_steps=0)


def test_softplus_rate_read_as_log_rate_fires_with_the_fix(tmp_path):
    (finding,) = serious(_run(tmp_path, CountNet(softplus=True)), "loss-input")
    assert finding["severity"] == "error" and finding["data"]["activation"] == "softplus"
    assert finding["data"]["zero_share_lower"] > finding["data"]["zero_share_bound"]
    assert "log_input=False" in finding["advice"] and "remove the softplus" in finding["advice"]


@pytest.mark.parametrize(("softplus", "log_input", "offset"), [(False, True, -0.6), (True, False, -0.6), (True, True, 1.8)],
                         ids=["log-rate-head", "rate-head-log-input-false", "softplus-head-rates-above-1"])
def test_healthy_poisson_heads_are_silent(tmp_path, softplus, log_input, offset):
    report = _run(tmp_path, CountNet(softplus=softplus, log_input=log_input), offset)
    assert serious(report, "loss-input") == []


def test_rate_floor_bound_on_counts():
    gen = torch.Generator().manual_seed(1)
    assert poisson_rate_floor_problem(poisson_tally(torch.poisson(torch.full((2000,), 1.2), generator=gen))) is None
    sparse = poisson_rate_floor_problem(poisson_tally(torch.poisson(torch.full((2000,), 0.5), generator=gen)))
    assert sparse["mean_count_upper"] < 1 and sparse["zero_share_lower"] > 0.37
    assert poisson_rate_floor_problem(poisson_tally(torch.tensor([-1.0, 0.0, 0.0]))) is None  # not counts


def test_poisson_nll_is_a_recognised_loss_with_its_best_constant(tmp_path):
    report = _run(tmp_path, CountNet(softplus=False))
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["loss-input"]["status"] == "pass" and checks["initial-loss"]["status"] == "pass"
    assert "poisson_nll_loss" in checks["initial-loss"]["detail"] and "m - m ln m" in checks["initial-loss"]["detail"]


class StandardisedCounts(CountNet):
    """Counts z-scored with the features (about half the targets negative): the loss falls without bound."""

    def __init__(self, functional):
        super().__init__(softplus=False)
        self.functional = functional

    def training_step(self, batch, batch_idx):
        x, y = batch
        y = (y - 1.0) / 1.5
        pred = self.net(x).squeeze(-1)
        return torch.nn.functional.poisson_nll_loss(pred, y) if self.functional else self.loss_fn(pred, y)


@pytest.mark.parametrize("functional", [False, True], ids=["module", "functional"])
def test_negative_poisson_targets_fire_loss_input(tmp_path, functional):
    (finding,) = serious(_run(tmp_path, StandardisedCounts(functional)), "loss-input")
    assert finding["severity"] == "error" and finding["data"]["negative"] > 0
    assert "never negative" in finding["message"] and "standardise" in finding["advice"]


@pytest.mark.parametrize(("log_input", "full"), [(True, False), (True, True), (False, False), (False, True)])
def test_poisson_prior_is_the_loss_of_the_best_constant_rate(log_input, full):
    from lightning_sanity.checks.loss_priors import poisson_nll_prior

    y = torch.poisson(torch.full((4000, 2), 6.0), generator=torch.Generator().manual_seed(2))
    m = y.mean(0).expand_as(y)
    best = torch.nn.functional.poisson_nll_loss(m.log() if log_input else m, y, log_input=log_input, full=full)
    prior = poisson_nll_prior(y, log_input, full)
    assert abs(prior.value - float(best)) < 1e-5
    for scale in (0.8, 1.25):  # any other constant rate costs more
        other = m * scale
        assert float(torch.nn.functional.poisson_nll_loss(other.log() if log_input else other, y,
                                                          log_input=log_input, full=full)) > prior.value
    assert poisson_nll_prior(torch.tensor([[-1.0], [2.0]])) is None  # negative targets: baseline unknown

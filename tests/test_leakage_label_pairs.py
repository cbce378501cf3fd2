"""target-leakage from two columns together: a next-value forecaster whose "momentum" feature is taken towards the
next value (``np.diff(y, append=...)``) gives the target as the last lag plus the momentum. The same forecaster with
the momentum taken backwards, a noiseless sine (its lags follow a two-term recurrence, and so does its next value)
and a target that is a noisy sum of two columns stay silent."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from helpers import Classifier, fit_report, loader, serious

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.label_pairs import pair_columns

WINDOW = 8


def series(n: int = 700, noise: bool = True) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    t = torch.arange(n, dtype=torch.float64)
    level = 3 + torch.sin(2 * math.pi * t / 50)
    if noise:
        cloud = torch.zeros(n, dtype=torch.float64)
        eps = torch.randn(n, generator=g, dtype=torch.float64)
        for i in range(1, n):
            cloud[i] = 0.7 * cloud[i - 1] + 0.4 * eps[i]
        level = level * torch.sigmoid(1 - cloud) + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    return level


def windows(y: torch.Tensor, momentum: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows forecasting ``y[t + 1]`` from the last ``WINDOW`` values and a day-over-day change at ``t``."""
    diff = torch.diff(y, append=y[-1:]) if momentum == "append" else torch.diff(y, prepend=y[:1])
    rows = [torch.cat([y[t - WINDOW + 1:t + 1], diff[t:t + 1]]) for t in range(WINDOW - 1, len(y) - 1)]
    x, target = torch.stack(rows).float(), y[WINDOW:].float()
    return (x - x.mean(0)) / x.std(0), (target - target.mean()) / target.std()


def fit(tmp_path, x: torch.Tensor, y: torch.Tensor) -> dict:
    model = Classifier(in_features=x.shape[1], classes=1,
                       loss_fn=lambda out, t: torch.nn.functional.mse_loss(out[:, 0], t))
    L.seed_everything(0)
    return fit_report(tmp_path, model, loader(x, y), [LeakageChecks(), SanitySummary(print_summary=False)],
                      logger=None, max_steps=3)


@pytest.mark.parametrize("momentum", ["append", "prepend"])
def test_a_change_taken_towards_the_next_value_gives_the_target_with_the_last_lag(tmp_path, momentum):
    x, y = windows(series(), momentum)
    found = serious(fit(tmp_path, x, y), "target-leakage")
    assert bool(found) is (momentum == "append")
    if found:
        assert found[0]["data"]["how"] == "pair"
        assert found[0]["data"]["columns"] == [WINDOW - 1, WINDOW]
        assert found[0]["severity"] == "warning"


def test_a_noiseless_sine_follows_its_own_recurrence_and_is_a_task(tmp_path):
    x, y = windows(series(noise=False), "prepend")
    lags = torch.cat([x[:, WINDOW - 2:WINDOW], torch.ones(len(x), 1)], 1).double()
    fit_ = torch.linalg.lstsq(lags, y.double()[:, None]).solution
    assert float((lags @ fit_ - y.double()[:, None]).abs().max()) < 1e-4  # the target is exact in the last two lags
    assert not serious(fit(tmp_path, x, y), "target-leakage")


def test_a_noisy_sum_of_two_columns_is_learnable_not_leaked(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 6, generator=g)
    y = x[:, 0] + x[:, 1] + 0.05 * torch.randn(512, generator=g)
    assert pair_columns(x, y) is None
    assert pair_columns(x, x[:, 0] + x[:, 1]) == (0, 1, pytest.approx(0, abs=1e-9))  # what noise keeps silent
    assert not serious(fit(tmp_path, x, y), "target-leakage")

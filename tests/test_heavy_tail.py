"""input-scale's heavy-tailed inputs in real Trainer runs: raw power spectra behind an input BatchNorm fire; their
log, a model that takes the log itself, raw measurements of moderate spread and sparse counts stay silent."""

import lightning as L
import pytest
import torch
from _models_fitstart import my_callbacks
from helpers import Classifier, fit_report, loader, serious
from torch import nn

from lightning_sanity.checks import heavy_tail as HT


def _spectra(n: int = 512, bins: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Power spectra of four instruments (an envelope over harmonics) at a recording gain spread over 80 dB."""
    g = torch.Generator().manual_seed(seed)
    k = torch.arange(1, bins + 1).float()
    envelopes = torch.stack([1 / k, 1 / k ** 2, (k % 2 == 1).float() / k + 1e-3, torch.exp(-((k - 5) ** 2) / 4)])
    y = torch.randint(0, 4, (n,), generator=g)
    gain = 10 ** (8 * torch.rand(n, 1, generator=g) - 4)
    noise = 1 + 0.1 * torch.rand(n, bins, generator=g)
    return (gain * envelopes[y] ** 2 * noise + 1e-9) * 1e4, y


class LogFirst(nn.Module):
    """Takes the log itself, after a shift: `log(x + eps)`, then an input BatchNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.BatchNorm1d(32), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(torch.log(x + 1e-8))


def _bn_mlp(features: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.BatchNorm1d(features), nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, classes))


def _run(tmp_path, net: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs) -> dict:
    L.seed_everything(0)
    return fit_report(tmp_path, Classifier(net=net, **kwargs), loader(x, y), my_callbacks(), max_epochs=1,
                      limit_train_batches=4, num_sanity_val_steps=0)


def _heavy(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["check"] == "input-scale" and "heavy-tailed" in f["message"]]


def test_raw_power_spectra_behind_an_input_batchnorm_fire(tmp_path):
    x, y = _spectra()
    report = _run(tmp_path, _bn_mlp(32, 4), x, y)
    (finding,) = serious(report, "input-scale")
    assert finding in _heavy(report) and finding["severity"] == "warning"
    assert finding["data"]["first_op"] == "batch_norm" and finding["data"]["heavy_features"] >= 16


def test_log_spectra_and_a_model_that_takes_the_log_stay_silent(tmp_path):
    x, y = _spectra()
    assert serious(_run(tmp_path, _bn_mlp(32, 4), torch.log10(x), y), "input-scale") == []
    report = _run(tmp_path, LogFirst(), x, y)
    assert serious(report, "input-scale") == [] and _heavy(report) == []


def test_raw_measurements_and_sparse_counts_behind_a_batchnorm_are_only_info(tmp_path):
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()  # raw: areas in the thousands next to ratios below 1, all non-negative
    x, y = torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target)
    report = _run(tmp_path, _bn_mlp(30, 2), x, y)
    assert serious(report, "input-scale") == [] and _heavy(report) == []
    g = torch.Generator().manual_seed(0)
    counts = torch.poisson(torch.full((512, 20), 60.0), generator=g) * (torch.rand(512, 20, generator=g) < 0.3)
    y = (counts[:, :10].sum(1) > counts[:, 10:].sum(1)).long()
    report = _run(tmp_path, _bn_mlp(20, 2), counts, y)
    assert serious(report, "input-scale") == [] and _heavy(report) == []


@pytest.mark.parametrize("name, values, heavy", [
    ("eight decades of power", lambda g: 10 ** (8 * torch.rand(256, 4, generator=g)), True),
    ("lognormal, sigma 1", lambda g: torch.exp(torch.randn(256, 4, generator=g)), False),
    ("exponential", lambda g: -torch.log(torch.rand(256, 4, generator=g)), False),
    ("uniform [0, 1]", lambda g: torch.rand(256, 4, generator=g), False),
    ("8-bit pixels, mostly blank", lambda g: (torch.rand(256, 4, generator=g) < 0.1) * 255.0, False),
])
def test_heavy_tail_counts(name, values, heavy):
    flat = values(torch.Generator().manual_seed(0)).double()
    positives, squashed = HT.squashed_counts(flat, flat.sum(0), (flat * flat).sum(0))
    assert (HT.heavy_tail(flat.amin(0), positives, squashed) is not None) is heavy, name


def test_the_squash_bar_is_the_tiny_input_bar():
    from lightning_sanity.checks import data as D

    assert HT.SQUASHED == D.SMALL_MAX

"""A forecaster's windows scaled with statistics of the horizon (``target-leakage``), and the labels of a batch of
three parts read from the part the loss compares with (``label-distribution`` on ``(tokens, offsets, y)``)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.data_checks import DataChecks
from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary


class Forecaster(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.head = nn.GRU(1, 16, batch_first=True), nn.Linear(16, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0][:, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _windows(joint: bool) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(128, 30, generator=g).cumsum(1) + torch.sin(torch.arange(30.0) / 3)
    stats = w if joint else w[:, :24]  # the bug: statistics of past AND horizon
    w = (w - stats.mean(1, keepdim=True)) / (stats.std(1, keepdim=True) + 1e-5)
    return DataLoader(TensorDataset(w[:, :24, None], w[:, 24:]), batch_size=32, shuffle=True)


@pytest.mark.parametrize("joint", [True, False])
def test_window_scaled_with_its_horizon_is_target_leakage(tmp_path, joint):
    L.seed_everything(0)
    report = fit_report(tmp_path, Forecaster(), _windows(joint), [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    if joint:
        assert found and found[0]["data"]["kind"] == "standardised"
    else:
        assert not found


class Bag(L.LightningModule):
    """fastText-style EmbeddingBag classifier on ``(tokens, offsets, y)`` batches."""

    def __init__(self) -> None:
        super().__init__()
        self.bag, self.head = nn.EmbeddingBag(50, 8), nn.Linear(8, 4)

    def training_step(self, batch, batch_idx):
        tokens, offsets, y = batch
        return F.cross_entropy(self.head(self.bag(tokens, offsets)), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _bags(sorted_labels: bool) -> list:
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(4).repeat_interleave(32) if sorted_labels else torch.randint(0, 4, (128,), generator=g)
    batches = []
    for i in range(0, 128, 16):
        ys = labels[i:i + 16]
        docs = [torch.randint(0, 40, (5,), generator=g) + int(y) * 3 for y in ys]
        offsets = torch.tensor([0] + [len(d) for d in docs[:-1]]).cumsum(0)
        batches.append((torch.cat(docs), offsets, ys))
    return batches


@pytest.mark.parametrize("sorted_labels", [True, False])
def test_labels_are_the_part_the_loss_compares_with(tmp_path, sorted_labels):
    L.seed_everything(0)
    train = DataLoader(_bags(sorted_labels), batch_size=None)
    report = fit_report(tmp_path, Bag(), train, [DataChecks(), SanitySummary(print_summary=False)], logger=None,
                        max_steps=6)
    found = serious(report, "label-distribution")
    if sorted_labels:
        assert found and found[0]["where"] == "batch[2]", found
    else:
        assert not found
        detail = next(c["detail"] for c in report["checks"] if c["name"] == "label-distribution")
        assert "4 classes" in detail, detail


class RevINForecaster(Forecaster):
    """Normalises each raw input window by its own statistics first (RevIN) and undoes it on the output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mu, sd = x.mean(1, keepdim=True), x.std(1, keepdim=True) + 1e-5
        return super().forward((x - mu) / sd) * sd[..., 0] + mu[..., 0]


def test_leakage_reads_of_a_forecast_batch_are_not_the_models_first_use_of_its_input(tmp_path):
    """Raw windows far from unit scale (level 25), multi-horizon targets: the model's first use of the input is a
    statistic (RevIN), so input-scale is silent; the leakage checks' own reads must not pass for that first use."""
    g = torch.Generator().manual_seed(0)
    w = 25 + torch.randn(128, 30, generator=g).cumsum(1) * 0.5
    train = DataLoader(TensorDataset(w[:, :24, None], w[:, 24:]), batch_size=32, shuffle=True)
    L.seed_everything(0)
    report = fit_report(tmp_path, RevINForecaster(), train,
                        [DataChecks(), LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    assert not serious(report), serious(report)

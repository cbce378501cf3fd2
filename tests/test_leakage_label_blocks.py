"""target-leakage on real Trainers for a feature column that splits the classes into intervals (``how == "blocks"``),
judged over the first epoch: a bearing-fault model whose "wear" covariate ranks recordings over paths sorted by
their class folder fires, and so does a cohort whose follow-up time is below the outcome's horizon exactly when the
event happened; the wear ranked by date stays silent, and so does real data whose best feature splits the first
small batch perfectly but not the epoch (breast cancer: four of its columns split the first batch of 32)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import breast_cancer, fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary


def _bearings(wear: str, n: int = 480) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    fault = torch.randint(0, 4, (n,), generator=g)
    t = torch.arange(128) / 128
    x = torch.sin(2 * torch.pi * (5 + 3 * fault[:, None]) * t) + torch.randn(n, 128, generator=g)
    order = torch.argsort(fault * n + torch.randperm(n, generator=g)) if wear == "path" else torch.randperm(
        n, generator=g)  # sorted by "<fault>/<date>" paths, or by date alone
    rank = torch.empty(n).index_copy_(0, order, torch.arange(n).float()) / n
    return DataLoader(TensorDataset(x[:, None], rank[:, None], fault), batch_size=32, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


class _Bearing(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(1, 8, 9, padding=4), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(9, 4)

    def forward(self, x: torch.Tensor, wear: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.conv(x), wear], 1))

    def training_step(self, batch, batch_idx):
        x, wear, y = batch
        return F.cross_entropy(self(x, wear), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("wear", ["path", "date"])
def test_wear_ranked_over_class_sorted_paths_fires(tmp_path, wear):
    L.seed_everything(0)
    report = fit_report(tmp_path, _Bearing(), _bearings(wear), [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_epochs=1)
    found = serious(report, "target-leakage")
    assert bool(found) is (wear == "path"), [f["message"] for f in found]
    if found:
        assert found[0]["data"] == {"names": ["batch[1] column 0"], "how": "blocks", "samples": 480}


class _Tabular(L.LightningModule):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.binary_cross_entropy_with_logits(self.net(x).squeeze(-1), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("follow_up", [False, True])
def test_real_data_split_by_one_feature_in_a_small_batch_only(tmp_path, follow_up):
    x, y = breast_cancer()
    if follow_up:  # months of follow-up: shorter than the 24-month horizon exactly when the event happened
        g = torch.Generator().manual_seed(1)
        months = torch.where(y == 1, 24 * torch.rand(len(y), generator=g), 24 + 36 * torch.rand(len(y), generator=g))
        x = torch.cat([x, (months[:, None] - 30) / 15], 1)
    leakage = LeakageChecks()
    data = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(7))
    L.seed_everything(0)
    report = fit_report(tmp_path, _Tabular(x.shape[1]), data, [leakage, SanitySummary(print_summary=False)],
                        logger=None, max_epochs=1)
    found = serious(report, "target-leakage")
    assert bool(found) is follow_up, [f["message"] for f in found]
    if found:
        assert found[0]["data"]["names"] == ["input column 30"] and found[0]["data"]["samples"] == 569
    else:  # the first batch was split by an honest feature: followed, and the epoch broke it
        assert "no column splits the classes into intervals over the first epoch (569 distinct rows)" in \
            leakage._ran["target-leakage"]

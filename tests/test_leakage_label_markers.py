"""target-leakage on real Trainers for a feature column that marks one class exactly (``how == "marker"``): a pump
failure model (1-D CNN on a vibration window plus an MLP on a metadata part, ``(x, meta, y)`` batches whose integer
labels the loss casts with ``y.float()``) whose metadata keeps ``downtime_minutes`` (0 on every healthy pump, varied
on each failed one) fires; the same model without the column, or with a legitimately zero-inflated repair count,
stays silent while its metadata is scanned. The same on a plain ``(x, y)`` tabular batch of real data."""

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
from lightning_sanity.checks.label_markers import marked_classes, marker_columns


def _pumps(kind: str, n: int = 256) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    fail = (torch.rand(n, generator=g) < 0.25).long()
    t = torch.arange(64) / 64
    x = torch.sin(2 * torch.pi * 8 * t).repeat(n, 3, 1) + 0.5 * torch.randn(n, 3, 64, generator=g)
    x[:, 0] += fail[:, None] * 0.3 * torch.sin(2 * torch.pi * 23 * t)
    meta = [2 + 8 * torch.rand(n, generator=g) + 2 * fail, 60 + 20 * torch.randn(n, generator=g)]
    if kind == "leak":  # filled in by the technician after the breakdown
        meta.append(fail * (30 + 300 * torch.rand(n, generator=g)))
    if kind == "repairs":  # a real zero-inflated signal: failing pumps were repaired more often, not always
        meta.append(torch.poisson(0.3 + 1.7 * fail.float(), generator=g))
    return DataLoader(TensorDataset(x, torch.stack(meta, 1), fail), batch_size=64, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


class _PumpModel(L.LightningModule):
    def __init__(self, meta: int) -> None:
        super().__init__()
        self.vib = nn.Sequential(nn.Conv1d(3, 8, 5, padding=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.meta, self.head = nn.Linear(meta, 8), nn.Linear(16, 1)

    def forward(self, x: torch.Tensor, meta: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.vib(x), torch.relu(self.meta(meta / 100))], 1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, meta, y = batch
        return F.binary_cross_entropy_with_logits(self(x, meta), y.float())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("kind", ["leak", "none", "repairs"])
def test_metadata_column_marking_the_failed_class(tmp_path, kind):
    train = _pumps(kind)
    leakage = LeakageChecks()
    L.seed_everything(0)
    report = fit_report(tmp_path, _PumpModel(3 if kind != "none" else 2), train,
                        [leakage, SanitySummary(print_summary=False)], logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    assert bool(found) is (kind == "leak"), [f["message"] for f in found]
    if found:
        assert found[0]["data"]["how"] == "marker" and found[0]["where"] == "batch[1] column 2", found[0]
        assert found[0]["data"]["marker"] == {"class": 0, "value": 0.0}
    else:  # the metadata part was scanned, the cast label found: silence is a judgement, not a skip
        assert any(r.startswith("no feature column gives the label away") for r in leakage._ran["target-leakage"])


@pytest.mark.parametrize("leak", [False, True])
def test_tabular_follow_up_days_marking_malignant(tmp_path, leak):
    x, y = breast_cancer()
    if leak:  # days to the follow-up biopsy: scheduled only after a malignant finding, 0 for benign
        g = torch.Generator().manual_seed(1)
        x = torch.cat([x, ((1 - y) * (7 + 60 * torch.rand(len(y), generator=g)))[:, None]], 1)
    model = nn.Sequential(nn.Linear(x.shape[1], 16), nn.ReLU(), nn.Linear(16, 1))

    class Tabular(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = model

        def training_step(self, batch, batch_idx):
            xb, yb = batch
            return F.binary_cross_entropy_with_logits(self.net(xb).squeeze(-1), yb)

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    train = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    L.seed_everything(0)
    report = fit_report(tmp_path, Tabular(), train, [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    assert bool(found) is leak, [f["message"] for f in found]
    if leak:
        assert found[0]["data"]["how"] == "marker" and found[0]["where"] == "input column 30", found[0]


def test_marker_chance_bound_and_measured_values():
    g = torch.Generator().manual_seed(0)
    y = torch.zeros(64, dtype=torch.long)
    y[:3] = 1
    x = torch.randn(64, 30, generator=g)
    x[:3, 5] = 0.0  # three rows of a rare class sharing a value: chance, never judged
    assert marked_classes([61, 3], 30) == [0] and marker_columns(x, y) == []
    y[:20] = 1
    x[:, 7] = torch.where(y == 0, 0.0, torch.rand(64, generator=g) + 1)  # 0 on all 44 rows of class 0 only
    assert marker_columns(x, y) == [7]
    x[:, 8] = torch.where(y == 0, 0.0, torch.randint(1, 4, (64,), generator=g).float())  # a small count: discrete
    assert marker_columns(x, y) == [7]
    x[10 + 20, 7] = 2.0  # one row of class 0 off the marked value: no longer exact
    assert marker_columns(x, y) == []

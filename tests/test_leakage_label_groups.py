"""target-leakage on real Trainers for the one-hot columns of a category that decides the label (``how ==
"one-hot group"``): breast-cancer rows with a one-hot discharge code written after the biopsy (some codes for
malignant cases, others for benign ones) fire; the same rows with a one-hot referring site (independent of the
label), or with a category strongly tied to the label but not deciding it, stay silent while their columns are
scanned. Unit tests bound chance: a per-patient id one-hot with a per-patient label, and a few small pure levels."""

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
from lightning_sanity.checks.label_groups import indicator_group


def _category(y: torch.Tensor, kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    n = len(y)
    if kind == "discharge":  # codes 0-2 for malignant cases, 3-6 for benign ones
        return torch.where(y == 0, torch.randint(0, 3, (n,), generator=g), torch.randint(3, 7, (n,), generator=g))
    if kind == "site":  # three hospitals, whatever the diagnosis
        return torch.randint(0, 3, (n,), generator=g)
    # a strongly tied category: 90 % of the benign cases at levels 3-6, 90 % of the malignant ones at 0-2
    tied = torch.rand(n, generator=g) < 0.9
    return torch.where(tied == (y == 0), torch.randint(0, 3, (n,), generator=g), torch.randint(3, 7, (n,), generator=g))


class Tabular(L.LightningModule):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 16), nn.ReLU(), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.binary_cross_entropy_with_logits(self.net(x).squeeze(-1), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("kind", ["discharge", "site", "tied"])
def test_one_hot_category_deciding_the_label(tmp_path, kind):
    x, y = breast_cancer()
    codes = F.one_hot(_category(y, kind), 7).float()
    x = torch.cat([x, codes], 1)
    train = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))
    leakage = LeakageChecks()
    L.seed_everything(0)
    report = fit_report(tmp_path, Tabular(x.shape[1]), train, [leakage, SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    assert bool(found) is (kind == "discharge"), [f["message"] for f in found]
    if found:
        assert found[0]["data"]["how"] == "one-hot group" and found[0]["data"]["columns"] == list(range(30, 37))
        assert "a category that decides the label" in found[0]["message"]
    else:
        assert any(r.startswith("no feature column gives the label away") for r in leakage._ran["target-leakage"])


def test_identity_and_small_levels_are_chance():
    g = torch.Generator().manual_seed(0)
    # 32 patients of two rows each, one label per patient: every id level is pure, none holds 3 rows
    patient = torch.arange(32).repeat_interleave(2)
    y = (torch.rand(32, generator=g) < 0.5).long().repeat_interleave(2)
    x = torch.cat([torch.randn(64, 4, generator=g), F.one_hot(patient, 32).float()], 1)
    assert indicator_group(x, y) == []
    # two pure levels of 3 rows in 16 distinct rows, the rest one level of mixed classes: not every row is marked
    y = torch.tensor([0] * 8 + [1] * 8)
    level = torch.tensor([0, 0, 0, 2, 2, 2, 2, 2, 1, 1, 1, 2, 2, 2, 2, 2])
    assert indicator_group(torch.cat([torch.randn(16, 2, generator=g), F.one_hot(level, 3).float()], 1), y) == []

"""target-leakage's label-column scan needs evidence beyond chance: a `WeightedRandomSampler` given per-class
weights (every batch holds the first two training rows, repeated) makes every column "equal" the label on its two
distinct rows, and stays silent; the same data with the label among the features still fires."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import Classifier, breast_cancer, fit_report, serious
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.leakage import chance_column, label_columns


@pytest.mark.parametrize("leak", [False, True])
def test_two_distinct_rows_are_no_evidence_a_label_column_is(tmp_path, leak):
    x, y = breast_cancer()
    y = y.long()
    first = torch.stack([(y == 0).nonzero()[0, 0], (y == 1).nonzero()[0, 0]])
    x, y = torch.cat([x[first], x]), torch.cat([y[first], y])  # rows 0 and 1: one of each class
    if leak:
        x = torch.cat([x, y[:, None].float() * 2 - 1], 1)
        sampler = None
    else:  # per-class weights where per-sample ones belong: only rows 0 and 1 are ever drawn
        sampler = WeightedRandomSampler(torch.tensor([0.5, 0.5], dtype=torch.double), len(x), replacement=True,
                                        generator=torch.Generator().manual_seed(0))
    train = DataLoader(TensorDataset(x, y), batch_size=32, sampler=sampler, shuffle=sampler is None,
                       generator=None if sampler else torch.Generator().manual_seed(0))
    L.seed_everything(0)
    report = fit_report(tmp_path, Classifier(in_features=x.shape[1], classes=2), train,
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    assert bool(serious(report, "target-leakage")) is leak


def test_chance_bound():
    # two distinct rows, one per class: any of 30 columns matches; 16 rows split 15/1: each binary column 1 in 8.
    assert chance_column([1, 1], 30) == 1.0
    assert chance_column([15, 1], 1) == pytest.approx(2 / 16)
    assert chance_column([16, 16], 30) < 1e-6
    y = torch.tensor([0, 1]).repeat(20)
    x = torch.randn(2, 5).repeat(20, 1)
    assert label_columns(x, y) == ([], "")
    assert label_columns(torch.randn(40, 5), y) == ([], "")

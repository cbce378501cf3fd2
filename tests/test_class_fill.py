"""target-leakage ``class-fill``: breast-cancer measurements with 40 % of the cells missing, filled with their
diagnosis group's mean before the split (every fill spells out the label), fire; the same gaps filled with the
column's global mean or median, and readings clipped at their percentiles, stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import Classifier, breast_cancer, fit_report, serious
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.class_fill import class_fill, mass_points, pure_chance


def _filled(how: str) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = breast_cancer()
    g = torch.Generator().manual_seed(0)
    gaps = torch.rand(x.shape, generator=g) < 0.4
    if how == "class-mean":
        means = torch.stack([torch.where(gaps[y == c], 0.0, x[y == c]).sum(0) / (~gaps[y == c]).sum(0)
                             for c in (0, 1)])
        x = torch.where(gaps, means[y.long()], x)
    elif how == "global-mean":
        x = torch.where(gaps, torch.where(gaps, 0.0, x).sum(0) / (~gaps).sum(0), x)
    elif how == "median":
        x = torch.where(gaps, x.nanquantile(0.5, 0), x)
    else:  # clipped at the 10th and 90th percentiles: mass points at each column's ends
        x = x.clamp(x.quantile(0.1, 0), x.quantile(0.9, 0))
    return x, y


@pytest.mark.parametrize("how, fires", [("class-mean", True), ("global-mean", False), ("median", False),
                                        ("clipped", False)])
def test_gaps_filled_with_the_class_mean_fire(tmp_path, how, fires):
    x, y = _filled(how)
    train = DataLoader(TensorDataset(x, y.long()), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    L.seed_everything(0)
    report = fit_report(tmp_path, Classifier(in_features=x.shape[1], classes=2), train,
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    if fires:
        assert found and found[0]["data"]["kind"] == "class-fill" and found[0]["data"]["chance"] < 1e-3, found
        assert "SimpleImputer" in found[0]["advice"]
    else:
        assert not found, found


def test_discrete_columns_and_duplicated_rows_are_no_evidence():
    y = torch.tensor([0, 1]).repeat(16)
    # a standardised category (5 codes) whose codes go with the class: ties are its nature, not fills
    codes = (y * 2 + torch.arange(32) % 2).float()
    assert mass_points((codes - codes.mean()) / codes.std()) is None
    # rows repeated by a sampler: every column has a pure "mass point" per class, on two distinct rows
    x = torch.randn(2, 6).repeat(16, 1)
    assert class_fill(x, y) is None
    # the exact permutation chance: one group of 4 rows of 10 split 5/5 is pure 2 * 5*4*3*2 / (10*9*8*7)
    assert pure_chance([4], [5, 5]) == pytest.approx(240 / 5040)

"""initial-loss on what the loss really compares: a per-element loss under a 0/1 mask is judged over the kept
elements, and outputs spread no wider than a default init gives are no finding."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from _models_fitstart import Regressor, my_callbacks
from helpers import diabetes, fit_report, loader, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

_SIZE = 16


def _spots(n=256, radius_scale=1.0, seed=0):
    """Images with 1-3 bright spots; per cell a target (dy, dx, radius) kept only at the spots' cells (mask 1)."""
    g = torch.Generator().manual_seed(seed)
    images = 0.3 * torch.randn(n, 1, _SIZE, _SIZE, generator=g)
    reg = torch.zeros(n, 3, _SIZE, _SIZE)
    mask = torch.zeros(n, 1, _SIZE, _SIZE)
    for i in range(n):
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            iy, ix = torch.randint(1, _SIZE - 1, (2,), generator=g).tolist()
            r = 1.5 + 1.5 * float(torch.rand(1, generator=g))
            images[i, 0, iy, ix] += r
            reg[i, :, iy, ix] = torch.tensor([float(torch.rand(1, generator=g)), float(torch.rand(1, generator=g)),
                                              r * radius_scale])
            mask[i, 0, iy, ix] = 1.0
    return DataLoader(TensorDataset(images, reg, mask), batch_size=32, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


class _OffsetHead(L.LightningModule):
    """A dense head whose offset / radius map is scored at the spots' cells only (CenterNet's regression)."""

    def __init__(self, indexed=False):
        super().__init__()
        self.indexed = indexed
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 3, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, reg, mask = batch
        per_cell = F.l1_loss(self(x), reg, reduction="none")
        if self.indexed:
            return per_cell[mask.expand_as(per_cell).bool()].mean()
        return (per_cell * mask).sum() / (3 * mask.sum()).clamp(min=1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _run(tmp_path, model, train):
    L.seed_everything(0)
    return fit_report(tmp_path, model, train, my_callbacks(), max_epochs=1, limit_train_batches=3,
                      num_sanity_val_steps=0)


def _initial(report):
    return next(c for c in report["checks"] if c["name"] == "initial-loss")


@pytest.mark.parametrize("indexed", [False, True], ids=["product", "indexed"])
def test_a_masked_offset_head_is_judged_over_its_kept_cells_and_stays_silent(tmp_path, indexed):
    report = _run(tmp_path, _OffsetHead(indexed), _spots())
    assert serious(report, "initial-loss") == [], report["findings"]
    detail = _initial(report)["detail"]
    assert "0/1 mask is 1" in detail and "best constant 0.0" not in detail  # the kept targets, not the zeros


def test_masked_targets_beyond_unit_reach_fire_with_the_kept_targets_median(tmp_path):
    # Radii in raw units (x40: 60..120) where a standardised scale was meant: an offset no unit-scale net closes.
    report = _run(tmp_path, _OffsetHead(), _spots(radius_scale=40.0))
    (finding,) = serious(report, "initial-loss")
    assert finding["data"]["best_bias"][2] > 50 and finding["data"]["centre_gap"] > 3  # the kept cells' median


def _small_targets():
    x, y = diabetes()
    return x, 0.02 * (y - y.mean()) / y.std()  # standardised, then scaled to a spread of 0.02


def _centred_regressor(scale=1.0):
    """A default-initialised MLP whose output starts centred on 0 (tanh hidden units, zero output bias): the excess
    over the best constant at init is the spread of its outputs, not an offset."""
    L.seed_everything(0)
    model = Regressor(loss_fn=lambda p, t: F.l1_loss(p.squeeze(-1), t), bias=0.0)
    model.net = nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 1))
    with torch.no_grad():
        model.net[2].bias.zero_()
        model.net[2].weight.mul_(scale)
    return model


def test_outputs_spread_as_a_default_init_spreads_them_are_silent(tmp_path):
    report = _run(tmp_path, _centred_regressor(), loader(*_small_targets()))
    assert serious(report, "initial-loss") == [], report["findings"]


def test_outputs_spread_by_scaled_up_weights_fire(tmp_path):
    report = _run(tmp_path, _centred_regressor(scale=30.0), loader(*_small_targets()))
    (finding,) = serious(report, "initial-loss")
    assert "spread far too widely" in finding["message"] and finding["data"]["output_std"] > 1


def test_prediction_jitter_skips_a_regression_counted_under_a_sparse_mask(tmp_path):
    # The offsets away from the spots are never trained and drift freely: their changes say nothing about settling.
    from lightning_sanity.callbacks.predictions import PredictionDynamics

    spots = _spots()
    L.seed_everything(0)
    report = fit_report(tmp_path, _OffsetHead(), spots, [*my_callbacks(), PredictionDynamics()], max_epochs=1,
                        limit_train_batches=3, num_sanity_val_steps=0)
    jitter = next(c for c in report["checks"] if c["name"] == "prediction-jitter")
    assert jitter["status"] == "skipped" and "0/1 mask" in jitter["detail"], jitter

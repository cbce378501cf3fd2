"""val-divergence's untrained gap: before any update the model is one function on both splits, so a validation loss
before training far above the first training loss, that validation never brings down to it, says the splits are
prepared differently. Regression targets offset on validation only (inside the training range, where the target
moments see nothing) fire it; the same data prepared alike, a validation loss summed over the batch, and a BatchNorm
model that validation runs on its initial statistics stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity
from lightning_sanity.checks.untrained_gap import judge_untrained_gap


def _regression(n: int = 4000) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    y = x @ torch.randn(8, generator=g) / 8 ** 0.5 + 0.3 * torch.randn(n, generator=g)
    return x, (y - y.mean()) / y.std()


class Regressor(L.LightningModule):
    def __init__(self, val_reduction: str = "mean", norm: bool = False) -> None:
        super().__init__()
        self.val_reduction = val_reduction
        self.net = nn.Sequential(nn.BatchNorm1d(8) if norm else nn.Identity(), nn.Linear(8, 32), nn.ReLU(),
                                 nn.Linear(32, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y, reduction=self.val_reduction))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def _fit(tmp_path, model: L.LightningModule, offset: float = 0.0, x_scale: float = 1.0) -> dict:
    x, y = _regression()
    train = DataLoader(TensorDataset(x[:3200] * x_scale, y[:3200]), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(x[3200:] * x_scale, y[3200:] + offset), batch_size=200)
    L.seed_everything(0)
    t = trainer(tmp_path, lightning_sanity.default_callbacks(print_summary=False), logger=None, max_epochs=6)
    t.fit(model, train, val)
    return read_report(t.log_dir)


@pytest.mark.parametrize("offset", [2.0, 0.0], ids=["val-targets-offset", "prepared-alike"])
def test_validation_targets_offset_inside_the_training_range(tmp_path, offset):
    report = _fit(tmp_path, Regressor(), offset=offset)
    found = serious(report, "val-divergence")
    if offset:
        assert [f["data"]["pattern"] for f in found] == ["untrained-gap"], found
        assert found[0]["data"]["ratio"] > 2 and found[0]["data"]["best_val"] > 2 * found[0]["data"]["initial_loss"]
    else:
        assert not serious(report), serious(report)


def test_validation_loss_summed_over_the_batch_is_a_reduction_not_a_gap(tmp_path):
    report = _fit(tmp_path, Regressor(val_reduction="sum"))
    assert not serious(report, "val-divergence"), serious(report, "val-divergence")


def test_batchnorm_on_its_initial_statistics_is_not_judged(tmp_path):
    # Eval mode before training normalises the raw inputs with running statistics 0/1: validation's untrained loss
    # is another function's, far above training's, until the statistics are learned.
    report = _fit(tmp_path, Regressor(norm=True), x_scale=30.0)
    assert not serious(report, "val-divergence"), serious(report, "val-divergence")


def test_untrained_gap_judgement():
    kwargs = dict(before=5.0, initial=1.0, train=[0.8, 0.3, 0.2], train_noise=[0.2, 0.05, 0.05], before_rows=800,
                  counts=[200])
    assert judge_untrained_gap(val=[4.3, 4.2, 4.2], **kwargs).kind == "untrained-gap"
    assert judge_untrained_gap(val=[4.3, 2.5, 1.9], **kwargs) is None  # validation caught up: learning transfers
    assert judge_untrained_gap(val=[4.3, 4.2], **kwargs) is None  # too few looks
    assert judge_untrained_gap(val=[4.3, 4.2, 4.2], **{**kwargs, "counts": [4]}) is None  # a sum over 4 rows
    assert judge_untrained_gap(val=[4.3, 4.2, 4.2], **{**kwargs, "before_rows": 2}) is None  # a noisy first look
    assert judge_untrained_gap(val=[4.3, 4.2, 4.2], **{**kwargs, "train": [0.8, 0.8, 0.79]}) is None  # no learning
    assert judge_untrained_gap(val=[4.3, 4.2, 4.2], **{**kwargs, "before": 1.9}) is None  # within a factor 2

"""update-ratio kind ``slow``: an MLP trained from scratch at a fine-tuning learning rate barely moves its weights
and ends its planned run close to the best constant prediction. The same MLP at a from-scratch rate, and a
fine-tune at the same tiny rate of an MLP first trained in the test (its loss ends far below the baseline), stay
silent."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch
from helpers import Classifier, digits, fit_report, loader, serious, trainer
from torch import nn

import lightning_sanity
from lightning_sanity.checks.slow_updates import SLOW_END, SLOW_RATIO


def mlp() -> nn.Module:
    """Initialised 3x too large, so it starts above the baseline and a slow run ends just below it."""
    L.seed_everything(0)
    net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[2].weight.mul_(3)
    return net


def run(tmp_path, model: Classifier) -> dict:
    x, y = digits()
    L.seed_everything(0)
    return fit_report(tmp_path, model, loader(x, y, batch_size=32),
                      lightning_sanity.default_callbacks(print_summary=False), logger=None, max_epochs=12)


@pytest.mark.parametrize("lr", [3e-5, 1e-3])
def test_a_from_scratch_model_at_a_fine_tuning_rate_learns_nothing_in_time(tmp_path, lr):
    report = run(tmp_path, Classifier(net=mlp(), lr=lr))
    found = [f for f in serious(report, "update-ratio") if f["data"].get("kind") == "slow"]
    assert bool(found) is (lr < 1e-4)
    if found:
        assert found[0]["data"]["ratio"] <= SLOW_RATIO
        assert found[0]["data"]["tail"] > SLOW_END * found[0]["data"]["baseline"]
        assert not serious(report, "loss-trend")  # still falling: no fault in the curve, update-ratio says why


def test_a_fine_tune_at_the_same_tiny_rate_learns_from_its_start(tmp_path):
    x, y = digits()
    pretrained = Classifier(net=mlp(), lr=1e-3)
    trainer(tmp_path / "pretrain", logger=None, max_epochs=3).fit(pretrained, loader(x, y))
    tuned = Classifier(net=copy.deepcopy(pretrained.net), lr=3e-5)
    report = run(tmp_path, tuned)
    ratio = next(c["detail"] for c in report["checks"] if c["name"] == "update-ratio")
    assert float(ratio.split()[2]) <= SLOW_RATIO  # the same tiny updates, judged fine: the loss is far below
    assert not serious(report, "update-ratio")

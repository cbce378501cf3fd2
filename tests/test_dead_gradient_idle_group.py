"""dead-gradient, kind ``idle_group``: an optimizer parameter group of its own, with an lr above 0, whose layers never
run with autograd in training_step.

The bug: a pretrained encoder's top block is "unfrozen" (requires_grad, its own group with lr 1e-3) while
training_step reads features cached through it in ``on_fit_start``: a warning naming the group. Healthy twins stay
below warning: the same unused block inside the single ``self.parameters()`` group (an unused pooler), the block
in its own group with lr 0, a frozen block, and the block applied in training_step on cached lower features.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, loader, fit, read_report
from torch import nn


class PartialFinetune(L.LightningModule):
    """Two encoder blocks and a head on digits; ``layout`` says how block2 is trained."""

    def __init__(self, layout: str) -> None:
        super().__init__()
        self.block1 = nn.Sequential(nn.Linear(64, 48), nn.GELU())
        self.block2 = nn.Sequential(nn.Linear(48, 24), nn.LayerNorm(24))
        self.head = nn.Linear(24, 10)
        self.layout = layout
        self.block1.requires_grad_(False)
        if layout == "frozen":
            self.block2.requires_grad_(False)

    def on_fit_start(self) -> None:
        x, _ = digits()
        with torch.no_grad():  # a feature cache, by sample index
            low = self.block1(x)
            self.cache = low if self.layout == "applied" else self.block2(low)

    def training_step(self, batch, batch_idx):
        idx, y = batch
        h = self.cache[idx]
        if self.layout == "applied":
            h = self.block2(h)
        return F.cross_entropy(self.head(h), y)

    def configure_optimizers(self):
        if self.layout == "one_group":
            return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=3e-3)
        block_lr = 0.0 if self.layout == "zero_lr" else 1e-3
        groups = [{"params": self.head.parameters(), "lr": 3e-3}]
        if self.layout != "frozen":
            groups.insert(0, {"params": self.block2.parameters(), "lr": block_lr})
        opt = torch.optim.AdamW(groups, weight_decay=1e-3)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=2)]


def _dead(tmp_path, layout) -> list[dict]:
    L.seed_everything(0)
    x, y = digits()
    t = fit(PartialFinetune(layout), tmp_path, loader(torch.arange(len(y)), y), max_epochs=2)
    return [f for f in read_report(t.log_dir)["findings"] if f["check"] == "dead-gradient"]


def test_unfrozen_block_read_from_a_feature_cache_is_a_warning(tmp_path):
    (finding,) = _dead(tmp_path, "cached")
    assert finding["severity"] == "warning" and finding["where"] == "block2"
    data = finding["data"]
    assert data["kind"] == "idle_group" and data["layers"] == ["block2.0", "block2.1"]
    assert data["groups"] == [{"optimizer": 0, "group": 0, "lr": 1e-3}]
    assert "param_groups[0]" in finding["message"] and "cache" in finding["advice"]


@pytest.mark.parametrize("layout", ["one_group", "zero_lr"])
def test_unused_block_without_a_group_meant_to_train_is_info(tmp_path, layout):
    found = _dead(tmp_path, layout)
    assert [(f["severity"], f["data"]["kind"]) for f in found] == [("info", "unused")]


@pytest.mark.parametrize("layout", ["frozen", "applied"])
def test_frozen_or_applied_block_is_silent(tmp_path, layout):
    assert _dead(tmp_path, layout) == []

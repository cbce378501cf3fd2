"""weight-growth: a norm that grows as fast late in the run as early (an L2 penalty with the wrong sign)."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn


class _L2MLP(L.LightningModule):
    """A digits MLP with a hand-written L2 penalty whose sign is switchable."""

    def __init__(self, sign):
        super().__init__()
        self.sign = sign
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def training_step(self, batch, batch_idx):
        x, y = batch
        penalty = sum(p.pow(2).sum() for n, p in self.named_parameters() if "weight" in n)
        return F.cross_entropy(self.net(x), y) + self.sign * 1e-3 * penalty

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("sign", [-1, 1])
def test_negative_l2_penalty_is_steady_weight_growth(tmp_path, sign):
    L.seed_everything(0)
    x, y = digits()
    report = read_report(fit(_L2MLP(sign), tmp_path, loader(x[:1280], y[:1280]), max_epochs=3).log_dir)
    found = serious(report, "weight-growth")
    if sign > 0:
        assert not found, found
        return
    (finding,) = found
    assert finding["data"]["kind"] == "steady" and finding["data"]["factor"] >= 3, finding["data"]
    assert "second half" in finding["message"]

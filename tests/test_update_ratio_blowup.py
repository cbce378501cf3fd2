"""update-ratio's single too-large step: a BatchNorm CNN under Adam at lr 0.256 (a linear-scaling rule without its
``/ 256``) moves every weight several times its RMS on the first step, the weights blow up tenfold and the ratio
looks ordinary from then on; the same net at lr 1e-3, and a layer initialised tiny whose first steps are as large as
its weights but which only grows to its ordinary scale, stay silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn


class _BNConv(L.LightningModule):
    """A conv net with BatchNorm on the 8x8 digits (scale-invariant convs: blown-up weights still classify), Adam at
    ``lr``; ``head_std``: the output layer drawn from N(0, head_std) instead of the default."""

    def __init__(self, lr: float, head_std: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, stride=2), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10),
        )
        if head_std:
            nn.init.normal_(self.net[-1].weight, std=head_std)
        self.lr = lr

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x.view(-1, 1, 8, 8)), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)


@pytest.mark.parametrize("lr, head_std, bug", [(0.256, 0.0, True), (1e-3, 0.0, False), (3e-3, 1e-4, False)])
def test_one_update_that_blows_the_weights_up_is_too_large(tmp_path, lr, head_std, bug):
    L.seed_everything(0)
    x, y = digits()
    report = read_report(fit(_BNConv(lr, head_std), tmp_path, loader(x[:1024], y[:1024]), max_epochs=2).log_dir)
    found = serious(report, "update-ratio")
    if not bug:
        assert not found, [f["message"] for f in found]
        return
    (finding,) = found
    assert finding["data"]["kind"] == "too_large" and "blew up" in finding["message"], finding["message"]
    assert "net.3" in finding["data"]["layers"], finding["data"]

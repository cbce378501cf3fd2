"""initial-loss on BCE with pos_weight: the margin is in units of the batch's mean weight, so a prior-odds bias
is not called overconfident because the first batch drew a few upweighted rare positives; a blown-up head is."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import breast_cancer, fit, read_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _rare_positives():
    """Breast cancer with one positive in eight kept (about 7 %), the first batch of 16 holding three of them."""
    x, y = breast_cancer()
    y = y.float()
    pos, neg = torch.nonzero(y == 1).flatten(), torch.nonzero(y == 0).flatten()
    n_pos = len(neg) // 13
    first = torch.cat([pos[:3], neg[:13]])
    rest = torch.cat([pos[3:n_pos], neg[13:]])
    rest = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(0))]
    order = torch.cat([first, rest])
    return x[order], y[order]


class _Screen(L.LightningModule):
    def __init__(self, prior, pos_weight, head_scale):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1))
        with torch.no_grad():
            self.net[-1].weight.mul_(head_scale)
            self.net[-1].bias.fill_(math.log(prior / (1 - prior)))  # the log prior odds ("init well")
        self.register_buffer("pos_weight", torch.tensor(pos_weight))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.binary_cross_entropy_with_logits(self.net(x).squeeze(-1), y, pos_weight=self.pos_weight)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=2e-3)


@pytest.mark.parametrize("head_scale", [1.0, 300.0])
def test_prior_bias_with_pos_weight_is_not_overconfident(tmp_path, head_scale):
    L.seed_everything(0)
    x, y = _rare_positives()
    n_pos = float(y.sum())
    model = _Screen(n_pos / len(y), (len(y) - n_pos) / n_pos, head_scale)
    t = fit(model, tmp_path, DataLoader(TensorDataset(x, y), batch_size=16), max_epochs=1)
    found = serious(read_report(t.log_dir), "initial-loss")
    if head_scale > 1:  # logits with a std of several units: overconfident whatever the weighting
        assert found and "overconfident" in found[0]["message"], found
    else:
        assert not found, found

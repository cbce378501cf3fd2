"""target-leakage on a multi-task batch ``(x, y_regression, y_flag)``: every head's label is scanned, so a binary
flag computed from the regression target and left among the features fires; the same model without it is silent."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import diabetes, fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary


class _TwoHeads(L.LightningModule):
    """A tabular trunk with a regression head (MSE, compared first) and a binary flag head (BCE)."""

    def __init__(self, features: int):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(features, 32), nn.ReLU())
        self.value, self.flag = nn.Linear(32, 1), nn.Linear(32, 1)

    def training_step(self, batch, batch_idx):
        x, y_value, y_flag = batch
        h = self.trunk(x)
        return (F.mse_loss(self.value(h).squeeze(-1), y_value)
                + F.binary_cross_entropy_with_logits(self.flag(h).squeeze(-1), y_flag))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("leak", [False, True])
def test_second_heads_label_among_the_features(tmp_path, leak):
    x, target = diabetes()
    flag = (target > 180).float()  # the second head's label, computed from the first's target
    y_value = (target - target.mean()) / target.std()
    if leak:  # the flag column left among the inputs, standardised with them
        x = torch.cat([x, ((flag - flag.mean()) / flag.std())[:, None]], 1)
    train = DataLoader(TensorDataset(x, y_value, flag), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    L.seed_everything(0)
    report = fit_report(tmp_path, _TwoHeads(x.shape[1]), train, [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=4)
    found = serious(report, "target-leakage")
    assert bool(found) is leak, [f["message"] for f in found]
    if leak:
        assert found[0]["where"] == "input column 10" and found[0]["data"]["how"] == "equal", found[0]

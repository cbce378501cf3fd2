"""target-leakage on window inputs for a regression target: diabetes records read as sequences (one step per
measurement) that keep the standardised target as their last step fire; the same sequences built from the features
alone, and synthetic windows whose every step is scaled by the target (an amplitude to regress), stay silent."""

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


class SequenceRegressor(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.gru, self.head = nn.GRU(1, 16, batch_first=True), nn.Linear(16, 1)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


@pytest.mark.parametrize("case", ["record", "features", "amplitude"])
def test_a_window_step_that_is_the_regression_target(tmp_path, case):
    x, y = diabetes()
    y = ((y - y.mean()) / y.std())[:, None]
    if case == "record":  # features and target stacked for scaling, the sequence built from the whole record
        seq = torch.cat([x, y], 1)
    elif case == "features":
        seq = x
    else:  # a sine whose amplitude is the target: every step is affine in it, none is a kept column
        seq = y * torch.sin(torch.arange(1, 13).float())[None, :]
    train = DataLoader(TensorDataset(seq[:, :, None], y), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    L.seed_everything(0)
    report = fit_report(tmp_path, SequenceRegressor(), train, [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    assert bool(found) is (case == "record"), [f["message"] for f in found]
    if found:
        assert found[0]["data"]["positions"] == [[10, 0]] and found[0]["data"]["how"] == "affine"

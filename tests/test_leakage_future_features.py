"""causal-leakage on a real Trainer for a GRU forecaster whose input holds the series next to a moving average of
it: a centred average (which reads the next value, the target) fires; a trailing one stays silent, and so does the
model's own causal test, which the series channel enables."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.future_features import future_features, shifted_channel


def _average(s: torch.Tensor, centred: bool, k: int = 5) -> torch.Tensor:
    left, right = (k // 2, k // 2) if centred else (k - 1, 0)
    padded = torch.cat([s[:, :1].expand(-1, left), s, s[:, -1:].expand(-1, right)], 1)
    return padded.unfold(1, k, 1).mean(-1)


def _loader(centred: bool, n: int = 64, length: int = 40) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(length + 1).float()
    s = torch.sin((0.2 + 0.3 * torch.rand(n, 1, generator=g)) * t + 6.28 * torch.rand(n, 1, generator=g))
    s = s + 0.3 * torch.randn(s.shape, generator=g)
    x = torch.stack([s[:, :-1], _average(s[:, :-1], centred)], -1)
    return DataLoader(TensorDataset(x, s[:, 1:]), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


class Forecaster(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.rnn, self.head = nn.GRU(2, 16, batch_first=True), nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0])[..., 0]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("centred", [True, False])
def test_centred_moving_average_feature_fires_trailing_is_silent(tmp_path, centred):
    L.seed_everything(0)
    report = fit_report(tmp_path, Forecaster(), _loader(centred), [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=3)
    checks = {c["name"]: c for c in report["checks"]}
    if centred:  # the GRU is causal: the future reaches step t through the feature, and only once
        found = serious(report)
        assert [f["check"] for f in found] == ["causal-leakage"]
        assert found[0]["severity"] == "error" and found[0]["data"]["channels"] == [1]
        assert "center=True" in found[0]["advice"]
    else:
        assert not serious(report)
        assert checks["causal-leakage"]["status"] == "pass"
    assert checks["target-leakage"]["status"] == "pass"


def test_channels_first_and_a_noisy_covariate():
    x, y = next(iter(_loader(True)))
    assert shifted_channel(x.transpose(1, 2), y) == (2, 1, 0)
    assert [c for c, _, _ in future_features(x.transpose(1, 2), 2, 1, 0)] == [1]
    # A covariate measured with noise is no exact function of the series, whatever window is given.
    noisy = x.clone()
    noisy[..., 1] += 0.01 * torch.randn(noisy[..., 1].shape, generator=torch.Generator().manual_seed(1))
    assert future_features(noisy, 1, 2, 0) == []

"""batch-mixing by forward values, on real Trainers: a window forecaster whose RevIN-style normaliser takes its
detached statistics over the batch as well as time (`dim=(0, 1)`: no gradient crosses samples, only values) fires;
the same model with per-window statistics (`dim=1`) and a top-1 mixture of experts with a capacity limit (a discrete
choice that depends on the batch, by design) stay silent."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary


def _windows(n: int = 128) -> DataLoader:
    """Sine windows of series with very different levels: lookback 16, horizon 4."""
    g = torch.Generator().manual_seed(0)
    level, phase = 5 * torch.rand(n, 1, generator=g), 6.28 * torch.rand(n, 1, generator=g)
    t = torch.arange(20).float()
    series = level + torch.sin(t / 3 + phase) + 0.1 * torch.randn(n, 20, generator=g)
    return DataLoader(TensorDataset(series[:, :16, None], series[:, 16:]), batch_size=32, shuffle=True)


class Forecaster(L.LightningModule):
    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = dims
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=self.dims, keepdim=True).detach()  # as RevIN code does
        std = torch.sqrt(x.var(dim=self.dims, keepdim=True, unbiased=False) + 1e-5).detach()
        return self.net((x - mean) / std) * std[:, :, 0] + mean[:, :, 0]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


class CapacityMoE(Forecaster):
    """Top-1 routing of each window to one of 4 experts, at most a quarter of the batch per expert (the rest pass
    through the shared path only), in eval mode as well."""

    def __init__(self) -> None:
        super().__init__((1,))
        self.gate = nn.Linear(16, 4)
        self.experts = nn.ModuleList(nn.Linear(16, 4) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.flatten(1)
        choice = self.gate(flat).argmax(1)
        capacity = max(1, x.shape[0] // 4)
        out = self.net(flat)
        for e, expert in enumerate(self.experts):
            rows = (choice == e).nonzero()[:capacity, 0]
            out = out.index_add(0, rows, expert(flat[rows]))
        return out


def _report(model: L.LightningModule, tmp_path) -> dict:
    return fit_report(tmp_path, model, _windows(), [ModelChecks(), SanitySummary(print_summary=False)],
                      max_epochs=1, limit_train_batches=2, limit_val_batches=0, num_sanity_val_steps=0)


def _detail(report: dict) -> str:
    return next(c["detail"] for c in report["checks"] if c["name"] == "batch-mixing")


def test_detached_statistics_over_the_batch_are_found_by_forward_values(tmp_path):
    report = _report(Forecaster((0, 1)), tmp_path)
    (finding,) = serious(report, "batch-mixing")
    assert finding["data"]["forward_values"] is True and finding["data"]["leak_fraction"] > 0.1
    assert 1.25 <= finding["data"]["proportional_ratio"] <= 3.2
    assert "gradient share 0 " in _detail(report)
    # Mixed before the first submodule runs: placed in the LightningModule's own forward.
    assert finding["data"]["before"] == "net"


@pytest.mark.parametrize("make", [lambda: Forecaster((1,)), CapacityMoE], ids=["per-window", "capacity-moe"])
def test_per_sample_statistics_and_capacity_routing_are_silent(tmp_path, make):
    report = _report(make(), tmp_path)
    assert serious(report, "batch-mixing") == []
    assert next(c["status"] for c in report["checks"] if c["name"] == "batch-mixing") == "pass"


def test_jumps_and_partial_moves_are_not_mixing():
    from lightning_sanity.checks.forward_mixing import judge_layout

    base = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    jump = base.clone()
    jump[0] += 0.05
    jump[2] = 0.0  # a routing flip: one other sample jumps, the same at r and r / 2
    assert not judge_layout(base, jump, jump)["mixing"]
    smooth_full, smooth_half = base - 0.05 * base[0], base - 0.025 * base[0]
    assert judge_layout(base, smooth_full, smooth_half)["mixing"]
    some = smooth_full.clone()
    some[3] = base[3]  # one other sample untouched: not statistics over the batch
    assert not judge_layout(base, some, smooth_half)["mixing"]

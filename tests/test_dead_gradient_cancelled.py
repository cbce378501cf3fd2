"""dead-gradient kind ``cancelled``: a branch whose value is exactly zero for every sample (PoolFormer's
``pool(x) - x`` on a 1x1 feature map) is info; a branch cut by ``.detach()``, or zeroed by a product with zero,
keeps its warning. Real Trainer runs on digits seen as 1x8x8 images."""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from helpers import Classifier, fit, read_report, serious
from torch import nn

from lightning_sanity.callbacks.activations import ActivationMonitor
from lightning_sanity.callbacks.norms import NormMonitor
from lightning_sanity.callbacks.summary import SanitySummary


class Scale(nn.Module):
    """Layer scale as timm's MetaFormer writes it: a per-channel vector, viewed as (C, 1, 1)."""

    def __init__(self, channels: int, init: float = 1e-2) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.full((channels,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale.view(-1, 1, 1)


class Pooling(nn.Module):
    """PoolFormer's token mixer: the identity on a 1x1 map, so the mixer's output is exactly zero there."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class PoolBlock(nn.Module):
    def __init__(self, channels: int, detach_mlp: bool = False) -> None:
        super().__init__()
        self.norm1, self.mixer, self.layer_scale1 = nn.GroupNorm(1, channels), Pooling(), Scale(channels)
        self.norm2, self.layer_scale2 = nn.GroupNorm(1, channels), Scale(channels)
        self.mlp = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.GELU(), nn.Conv2d(2 * channels, channels, 1))
        self.detach_mlp = detach_mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_scale1(self.mixer(self.norm1(x)))
        mlp = self.mlp(self.norm2(x))
        return x + self.layer_scale2(mlp.detach() if self.detach_mlp else mlp)


class PoolFormer(Classifier):
    """8x8 -> 4x4 -> 2x2 -> 1x1: the last stage's mixer runs on a 1x1 map. ``bug``: "detach" cuts the last block's
    MLP branch, "times_zero" adds an auxiliary head's output multiplied by 0 to the logits."""

    def __init__(self, bug: Optional[str] = None) -> None:
        super().__init__()
        c = 16
        self.net = nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, c, 3, stride=2, padding=1), PoolBlock(c),
            nn.Conv2d(c, c, 3, stride=2, padding=1), PoolBlock(c),
            nn.Conv2d(c, c, 3, stride=2, padding=1), PoolBlock(c, detach_mlp=bug == "detach"),
            nn.Flatten(), nn.LayerNorm(c), nn.Linear(c, 10))
        self.aux = nn.Linear(64, 10) if bug == "times_zero" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out if self.aux is None else out + 0.0 * self.aux(x)


def _report(model, tmp_path) -> dict:
    L.seed_everything(0)
    callbacks = [NormMonitor(), ActivationMonitor(), SanitySummary(print_summary=False)]
    return read_report(fit(model, tmp_path, callbacks=callbacks, max_epochs=1).log_dir)


def _dead(report: dict) -> dict[str, dict]:
    return {f["data"]["kind"]: f for f in report["findings"] if f["check"] == "dead-gradient"}


CANCELLED = ["net.6.norm1", "net.6.layer_scale1"]


def test_branch_cancelled_to_zero_on_a_1x1_map_is_info(tmp_path):
    report = _report(PoolFormer(), tmp_path)
    assert not serious(report, "dead-gradient"), [f["message"] for f in serious(report)]
    found = _dead(report)
    assert set(found) == {"cancelled"}
    assert found["cancelled"]["severity"] == "info" and found["cancelled"]["data"]["layers"] == CANCELLED
    assert "1x1" in found["cancelled"]["message"]


def test_branch_cut_by_detach_next_to_a_cancelled_one_still_warns(tmp_path):
    found = _dead(_report(PoolFormer(bug="detach"), tmp_path))
    assert found["missing"]["severity"] == "warning"
    assert found["missing"]["data"]["layers"] == ["net.6.norm2", "net.6.mlp.0", "net.6.mlp.2"]
    assert found["cancelled"]["data"]["layers"] == CANCELLED


def test_output_multiplied_by_zero_is_not_a_cancellation(tmp_path):
    found = _dead(_report(PoolFormer(bug="times_zero"), tmp_path))
    assert found["zero"]["severity"] == "warning" and found["zero"]["data"]["layers"] == ["aux"]
    assert found["cancelled"]["data"]["layers"] == CANCELLED

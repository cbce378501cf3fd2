"""weight-growth on gains: a layer scale (CaiT, PoolFormer, ConvNeXt) starting at 1e-5 grows toward the unit scale
of a gain's default (ones): learning; the same gain pushed tenfold past unit scale still fires."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn

from lightning_sanity.checks.init_scale import default_init_norms


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Residual(L.LightningModule):
    """Two pre-norm residual MLP blocks with layer scales on digits, AdamW at 1e-3: two epochs end while the layer
    scales are still growing (from 5.7e-5 to about 0.5 in norm)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.head = nn.Linear(64, 32), nn.Linear(32, 10)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(32), nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32),
                                                  LayerScale(32)) for _ in range(2))

    def training_step(self, batch, batch_idx):
        x, y = batch
        h = self.stem(x)
        for block in self.blocks:
            h = h + block(h)
        return F.cross_entropy(self.head(h), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def test_a_layer_scale_growing_from_1e_5_is_learning(tmp_path):
    L.seed_everything(0)
    x, y = digits()
    model = _Residual()
    first = model.blocks[0][-1].gamma.norm().item()
    report = read_report(fit(model, tmp_path, loader(x[:1280], y[:1280], batch_size=32), max_epochs=2).log_dir)
    assert model.blocks[0][-1].gamma.norm().item() > 1000 * first  # far past the 10x bar from its start
    found = serious(report, "weight-growth")
    assert not found, [f["message"] for f in found]


def test_a_gains_default_scale_is_one_per_element():
    model = nn.Sequential(LayerScale(32), nn.LayerNorm(8), nn.Linear(64, 1))
    norms = default_init_norms(model, ["0", "1", "2"], [32, 16, 65]).tolist()
    assert norms[0] == pytest.approx(32 ** 0.5) and norms[1] == pytest.approx(4.0)
    assert norms[2] == pytest.approx((65 / (3 * 64)) ** 0.5)  # a Linear keeps Kaiming-uniform's scale

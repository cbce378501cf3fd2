"""causal-leakage on a real Trainer for a Transformer-encoder forecaster of multi-channel float windows (target: channel
0 shifted by one). A float ``triu(ones)`` mask is added to the attention scores in training (+1, nothing blocked) but
read as a boolean mask by PyTorch's eval/``no_grad`` fast path: the probe must run the training path and fire. The
same model with a boolean mask, or a ``-inf`` float mask, stays silent."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks._extra_forward import training_attention
from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary

T = 24
pytestmark = pytest.mark.skipif(not hasattr(torch.backends, "mha"), reason="torch.backends.mha is torch >= 2.3")


def _loader(n: int = 64) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(T + 1).float()
    s = torch.sin((0.2 + 0.3 * torch.rand(n, 1, generator=g)) * t + 6.28 * torch.rand(n, 1, generator=g))
    s = s + 0.2 * torch.randn(s.shape, generator=g)
    other = 0.7 * torch.roll(s, 2, 1) + 0.2 * torch.randn(s.shape, generator=g)
    x = torch.stack([s, other, 0.5 * (s + other)], -1)
    return DataLoader(TensorDataset(x[:, :-1], s[:, 1:]), batch_size=16, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


def _mask(kind: str) -> torch.Tensor:
    upper = torch.triu(torch.ones(T, T), diagonal=1)
    if kind == "float-ones":  # the bug: added to the scores, blocks nothing
        return upper
    if kind == "bool":
        return upper.bool()
    return nn.Transformer.generate_square_subsequent_mask(T)  # float, -inf above the diagonal


class Forecaster(L.LightningModule):
    def __init__(self, mask: str, d: int = 16) -> None:
        super().__init__()
        self.inp, self.pos = nn.Linear(3, d), nn.Parameter(0.02 * torch.randn(1, T, d))
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 1)
        self.register_buffer("causal", _mask(mask))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(self.inp(x) + self.pos, mask=self.causal))[..., 0]

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.mark.parametrize("mask", ["float-ones", "bool", "float-inf"])
def test_float_ones_mask_fires_boolean_and_inf_masks_are_silent(tmp_path, mask):
    L.seed_everything(0)
    model = Forecaster(mask)
    report = fit_report(tmp_path, model, _loader(), [LeakageChecks(), SanitySummary(print_summary=False)],
                        logger=None, max_steps=6)
    checks = {c["name"]: c for c in report["checks"]}
    if mask == "float-ones":
        found = serious(report, "causal-leakage")
        assert found and found[0]["severity"] == "error"
        assert found[0]["data"]["position"] <= found[0]["data"]["perturbed_after"]
        assert "triu(ones).bool()" in found[0]["advice"]
    else:
        assert not serious(report)
        assert checks["causal-leakage"]["status"] == "pass"
    assert torch.backends.mha.get_fastpath_enabled()  # put back after the probes


def test_training_attention_restores_the_flag_and_runs_the_added_mask():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True).eval()
    x = torch.randn(2, T, 8, generator=torch.Generator().manual_seed(0))
    later = x.clone()
    later[:, T // 2:] += 1
    mask = _mask("float-ones")
    with torch.no_grad():
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            with training_attention():
                slow = (layer(x, src_mask=mask) - layer(later, src_mask=mask))[:, : T // 2].abs().max()
            assert not torch.backends.mha.get_fastpath_enabled()  # a user's own setting is kept
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
    assert float(slow) > 1e-3  # the earlier outputs read the later inputs, as in training

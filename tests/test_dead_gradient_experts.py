"""dead-gradient on a mixture of experts: experts a top-1 router stopped choosing while their identical siblings
learn are info (data-dependent routing); every expert cut off from the loss after a while is still a warning."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, fit, loader, read_report, serious
from torch import nn


class _MoE(L.LightningModule):
    """A digits MLP trunk feeding 4 expert MLPs through a top-1 router (the chosen expert's output scaled by its
    router probability, Switch-style), no load-balancing loss: the router collapses onto some experts.
    ``cut_after``: from this epoch on the experts' output is detached (a stop-gradient switched on the wrong way
    round), which cuts every expert."""

    def __init__(self, cut_after: int = -1):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
        self.router = nn.Linear(32, 4)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)) for _ in range(4))
        self.skip = nn.Linear(32, 10)
        self.cut_after = cut_after

    def training_step(self, batch, batch_idx):
        x, y = batch
        h = self.trunk(x)
        gate, choice = self.router(h).softmax(-1).max(-1)
        out = h.new_zeros(h.shape[0], 10)
        for i, expert in enumerate(self.experts):
            sel = choice == i
            if sel.any():
                out[sel] = gate[sel, None] * expert(h[sel])
        if 0 <= self.cut_after <= self.current_epoch:
            out = out.detach()
        return F.cross_entropy(out + self.skip(h), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("cut_after", [-1, 1])
def test_experts_the_router_stopped_choosing_are_info(tmp_path, cut_after):
    L.seed_everything(0)
    x, y = digits()
    report = read_report(fit(_MoE(cut_after), tmp_path, loader(x[:1280], y[:1280]), max_epochs=4).log_dir)
    found = serious(report, "dead-gradient")
    if cut_after < 0:
        assert not found, [f["message"] for f in found]
        info = [f for f in report["findings"] if f["check"] == "dead-gradient" and f["data"]["kind"] == "unrouted"]
        assert info and all(layer.startswith("experts.") for layer in info[0]["data"]["layers"])
        return
    (finding,) = found
    assert finding["data"]["kind"] == "died", finding["data"]
    assert {"router", "experts.1.0", "experts.2.2"} <= set(finding["data"]["layers"]), finding["data"]

"""batch-mixing on a real Trainer for node classification on one graph given as a dense adjacency: the nodes of a
GraphSAGE-style model mix through the row-normalised adjacency by design, so the check says why it does not judge
the call; the same nodes fed without their graph to a model that mixes them (a mean over the batch) still fire."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary


def _graph() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (120,), generator=g)
    adjacency = (torch.rand(120, 120, generator=g) < torch.where(y[:, None] == y[None, :], 0.1, 0.01)).float()
    adjacency = ((adjacency + adjacency.T) > 0).float()
    x = F.one_hot(y, 3).float() @ torch.randn(3, 8, generator=g) + torch.randn(120, 8, generator=g)
    return x, adjacency / adjacency.sum(1, keepdim=True).clamp(min=1), y


class MeanSAGE(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.own, self.neighbours = nn.Linear(8, 3), nn.Linear(8, 3, bias=False)

    def forward(self, x: torch.Tensor, prop: torch.Tensor) -> torch.Tensor:
        return self.own(x) + self.neighbours(prop @ x)

    def training_step(self, batch, batch_idx):
        x, prop, y = batch
        return F.cross_entropy(self(x, prop), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class BatchMean(MeanSAGE):
    """The same nodes without their graph, mixed by a mean over the batch: a real mixing bug."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.own(x) + self.neighbours(x.mean(0, keepdim=True).expand_as(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)


@pytest.mark.parametrize("graph", [True, False])
def test_dense_adjacency_is_a_graph_not_a_mixing_bug(tmp_path, graph):
    x, prop, y = _graph()
    data = DataLoader([(x, prop, y) if graph else (x, y)], batch_size=None)
    L.seed_everything(0)
    report = fit_report(tmp_path, MeanSAGE() if graph else BatchMean(), data,
                        [ModelChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    checks = {c["name"]: c for c in report["checks"]}
    if graph:
        assert not serious(report, "batch-mixing")
        assert checks["batch-mixing"]["status"] == "skipped" and "adjacency" in checks["batch-mixing"]["detail"]
    else:
        assert serious(report, "batch-mixing")

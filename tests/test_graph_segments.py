"""constant-output and batch-mixing on segment-batched graphs (node tensors with a `batch` vector, one output row per
graph): a radius graph built over the whole batch joins points of different clouds (warning); the same EdgeConv with
neighbourhoods kept inside each cloud, and a molecule-style model with embedded atom types, stay silent."""

import math

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary

POINTS = 12


def _clouds(n, seed=0):
    """Circles and crosses of POINTS noisy points each, centred at the origin."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n):
        label = int(torch.randint(0, 2, (1,), generator=g))
        t = torch.rand(POINTS, generator=g)
        if label == 0:
            p = torch.stack([(2 * math.pi * t).cos(), (2 * math.pi * t).sin()], 1)
        else:
            u = 2 * t - 1
            p = torch.stack([u, torch.zeros_like(u)], 1)[torch.randperm(POINTS, generator=g)]
            p[::2] = p[::2].flip(1)
        items.append((p + 0.05 * torch.randn(POINTS, 2, generator=g), torch.tensor(label)))
    return items


def _collate(items):
    pos = torch.cat([p for p, _ in items])
    vector = torch.cat([torch.full((len(p),), k) for k, (p, _) in enumerate(items)])
    return pos, vector, torch.stack([y for _, y in items])


class EdgeConvNet(L.LightningModule):
    """EdgeConv on a radius graph, mean pool per cloud; ``per_graph=False`` builds the graph over the whole batch."""

    def __init__(self, per_graph):
        super().__init__()
        self.per_graph = per_graph
        self.mlp = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16))
        self.head = nn.Linear(16, 2)

    def forward(self, pos, batch):
        adj = torch.cdist(pos, pos) < 0.6
        if self.per_graph:
            adj &= batch[:, None] == batch[None, :]
        dst, src = adj.nonzero(as_tuple=True)
        msg = self.mlp(torch.cat([pos[dst], pos[src] - pos[dst]], -1))
        h = torch.full((len(pos), 16), -1e4).scatter_reduce(0, dst[:, None].expand_as(msg), msg, reduce="amax")
        graphs = int(batch.max()) + 1
        pooled = torch.zeros(graphs, 16).index_add_(0, batch, F.relu(h))
        counts = torch.zeros(graphs).index_add_(0, batch, torch.ones(len(pos)))
        return self.head(pooled / counts[:, None])

    def training_step(self, b, batch_idx):
        pos, batch, y = b
        return F.cross_entropy(self(pos, batch), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


class Molecules(L.LightningModule):
    """Atom-type embeddings, one message pass over a per-molecule complete graph, sum pool (dict batches)."""

    def __init__(self):
        super().__init__()
        self.atoms = nn.Embedding(5, 8)
        self.message = nn.Linear(8, 8)
        self.head = nn.Linear(8, 1)

    def forward(self, atoms, batch):
        h = self.atoms(atoms)
        same = (batch[:, None] == batch[None, :]).float()
        h = h + torch.tanh(self.message(same @ h))
        return self.head(torch.zeros(int(batch.max()) + 1, 8).index_add_(0, batch, h)).squeeze(-1)

    def training_step(self, b, batch_idx):
        return F.mse_loss(self(b["atoms"], b["batch"]), b["y"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _molecule_batches():
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(4):
        sizes = torch.randint(3, 7, (12,), generator=g)
        atoms = torch.randint(0, 5, (int(sizes.sum()),), generator=g)
        batch = torch.repeat_interleave(torch.arange(12), sizes)
        y = torch.zeros(12).index_add_(0, batch, (atoms == 2).float())
        out.append({"atoms": atoms, "batch": batch, "y": y})
    return DataLoader(out, batch_size=None)


def _report(tmp_path, model, train):
    L.seed_everything(0)
    return fit_report(tmp_path, model, train, [ModelChecks(), SanitySummary(print_summary=False)], max_steps=2)


def _clouds_loader():
    return DataLoader(_clouds(64), batch_size=16, collate_fn=_collate)


def test_a_radius_graph_over_the_whole_batch_mixes_clouds(tmp_path):
    report = _report(tmp_path, EdgeConvNet(per_graph=False), _clouds_loader())
    (finding,) = serious(report, "batch-mixing")
    assert finding["data"]["graphs"] == 9 and finding["data"]["nodes"] == 9 * POINTS
    assert finding["data"]["leak_fraction"] > 0.01 and "batch vector" in finding["advice"]
    assert not serious(report, "constant-output")


@pytest.mark.parametrize("build, train", [
    (lambda: EdgeConvNet(per_graph=True), _clouds_loader),
    (Molecules, _molecule_batches),
], ids=["edgeconv-per-cloud", "molecules-embedded-atoms"])
def test_graphs_kept_apart_stay_silent(tmp_path, build, train):
    report = _report(tmp_path, build(), train())
    assert not serious(report, "batch-mixing") and not serious(report, "constant-output")
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["batch-mixing"]["status"] == "pass" and "cross-graph gradient share 0 " in checks["batch-mixing"]["detail"]
    assert checks["constant-output"]["status"] == "pass" and "graph batch" in checks["constant-output"]["detail"]


class ZeroedNodes(EdgeConvNet):
    """Node positions multiplied by zero before the message MLP: every cloud gives the same output."""

    def forward(self, pos, batch):
        return super().forward(pos * 0.0, batch)


def test_a_graph_model_that_ignores_its_nodes_is_constant(tmp_path):
    report = _report(tmp_path, ZeroedNodes(per_graph=True), _clouds_loader())
    (finding,) = serious(report, "constant-output")
    assert finding["severity"] == "error" and finding["data"]["graphs_compared"] == 8

"""batch-mixing on PyG-style graph batches in real Trainer runs: a collate that does not shift each graph's
`edge_index` by the nodes before it (edges join graphs) fires; the shifted collate stays silent. With clean edges,
an attention readout whose softmax runs over every node of the batch (not per graph) fires too; the per-graph
softmax stays silent."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.model_checks import ModelChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.graph_batches import cross_graph_edges


def _graphs(n=64):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        k = int(torch.randint(4, 9, (1,), generator=g))
        edges = torch.randint(0, k, (2, 2 * k), generator=g)
        x = torch.randn(k, 8, generator=g)
        out.append({"x": x, "edge_index": edges, "y": float(x[:, 0].sum() > 0)})
    return out


def _collate(shift):
    def collate(graphs):
        xs, edges, batch, offset = [], [], [], 0
        for i, gr in enumerate(graphs):
            xs.append(gr["x"])
            edges.append(gr["edge_index"] + (offset if shift else 0))
            batch.append(torch.full((len(gr["x"]),), i))
            offset += len(gr["x"])
        return {"x": torch.cat(xs), "edge_index": torch.cat(edges, 1), "batch": torch.cat(batch),
                "y": torch.tensor([gr["y"] for gr in graphs])}
    return collate


class SumGNN(L.LightningModule):
    def __init__(self, readout: str = "sum"):
        super().__init__()
        self.lin, self.head, self.gate = nn.Linear(8, 16), nn.Linear(16, 1), nn.Linear(16, 1)
        self.readout = readout

    def forward(self, x, edge_index, batch):
        h = torch.relu(self.lin(x))
        h = h + torch.zeros_like(h).index_add_(0, edge_index[1], h[edge_index[0]])
        graphs = int(batch.max()) + 1
        if self.readout == "batch_softmax":  # the bug: one softmax over every node of the batch
            h = torch.softmax(self.gate(h), dim=0) * h
        elif self.readout == "graph_softmax":  # softmax within each graph
            score = self.gate(h).squeeze(-1)
            top = torch.full((graphs,), -torch.inf).scatter_reduce(0, batch, score, "amax")
            weight = (score - top[batch]).exp()
            weight = weight / torch.zeros(graphs).index_add_(0, batch, weight)[batch]
            h = weight[:, None] * h
        pooled = torch.zeros(graphs, h.shape[1]).index_add_(0, batch, h)
        return self.head(pooled).squeeze(-1)

    def training_step(self, b, i):
        return F.binary_cross_entropy_with_logits(self(b["x"], b["edge_index"], b["batch"]), b["y"])

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("shift", [False, True], ids=["edge-index-not-offset", "offset-collate"])
def test_graph_batches_are_judged_by_their_edges(tmp_path, shift):
    L.seed_everything(0)
    t = trainer(tmp_path, [ModelChecks(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                limit_train_batches=4)
    t.fit(SumGNN(), DataLoader(_graphs(), batch_size=16, collate_fn=_collate(shift)))
    report = read_report(t.log_dir)
    check = {c["name"]: c for c in report["checks"]}["batch-mixing"]
    found = serious(report, "batch-mixing")
    if shift:
        assert found == [] and check["status"] == "pass" and "none of" in check["detail"]
    else:
        assert len(found) == 1 and found[0]["severity"] == "error" and found[0]["data"]["cross"] > 0
        assert "offset" in found[0]["advice"]


def test_edges_past_the_nodes_count():
    assert cross_graph_edges(torch.tensor([[0, 5], [1, 1]]), torch.tensor([0, 0, 1]))["outside"] == 1


@pytest.mark.parametrize("readout", ["batch_softmax", "graph_softmax"])
def test_clean_edges_but_a_readout_over_the_whole_batch_fires(tmp_path, readout):
    L.seed_everything(0)
    t = trainer(tmp_path, [ModelChecks(), SanitySummary(print_summary=False)], logger=None, max_epochs=1,
                limit_train_batches=4)
    t.fit(SumGNN(readout), DataLoader(_graphs(), batch_size=16, collate_fn=_collate(True)))
    report = read_report(t.log_dir)
    check = {c["name"]: c for c in report["checks"]}["batch-mixing"]
    found = serious(report, "batch-mixing")
    assert "none of" in check["detail"] and "cross-graph gradient share" in check["detail"]
    if readout == "graph_softmax":
        assert found == []
    else:
        assert len(found) == 1 and found[0]["data"]["leak_fraction"] > 0

"""target-leakage ``graph-links``: a graph autoencoder (GCN encoder over an adjacency buffer, inner-product decoder)
scored on validation edges that were left in the adjacency it propagates over fires; the same model with the
validation edges removed from its graph (a correct link split) stays silent, as does an edge list buffer that holds
only the training edges."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from helpers import read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.graph_links import fisher_one_sided, graph_leak

N = 60


def _graph(g):
    community = torch.randint(0, 3, (N,), generator=g)
    prob = torch.where(community[:, None] == community[None, :], 0.3, 0.01)
    edges = torch.triu(torch.rand(N, N, generator=g) < prob, diagonal=1).nonzero()
    features = nn.functional.one_hot(community, 3).float() + 0.5 * torch.randn(N, 3, generator=g)
    return edges, features


def _adjacency(edges):
    a = torch.zeros(N, N)
    a[edges[:, 0], edges[:, 1]] = a[edges[:, 1], edges[:, 0]] = 1.0
    a = a + torch.eye(N)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


class _GAE(L.LightningModule):
    def __init__(self, features, adj):
        super().__init__()
        self.lin = nn.Linear(features.shape[1], 8)
        self.register_buffer("features", features)
        self.register_buffer("adj", adj)

    def score(self, pairs):
        z = self.adj @ self.lin(self.adj @ self.features)
        return (z[pairs[:, 0]] * z[pairs[:, 1]]).sum(-1)

    def training_step(self, batch, batch_idx):
        (pos,) = batch
        neg = torch.randint(0, N, pos.shape)
        labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))])
        return nn.functional.binary_cross_entropy_with_logits(self.score(torch.cat([pos, neg])), labels)

    def validation_step(self, batch, batch_idx):
        pairs, labels = batch
        self.log("val_loss", nn.functional.binary_cross_entropy_with_logits(self.score(pairs), labels))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("leak", [True, False])
def test_validation_edges_in_the_message_graph_fire(tmp_path, leak):
    g = torch.Generator().manual_seed(0)
    edges, features = _graph(g)
    perm = torch.randperm(len(edges), generator=g)
    n_val = len(edges) // 6
    val_pos, train_pos = edges[perm[:n_val]], edges[perm[n_val:]]
    full = _adjacency(edges)
    cand = torch.randint(0, N, (4 * n_val, 2), generator=g)
    val_neg = cand[(full[cand[:, 0], cand[:, 1]] == 0)][:n_val]
    val = TensorDataset(torch.cat([val_pos, val_neg]), torch.cat([torch.ones(n_val), torch.zeros(len(val_neg))]))
    L.seed_everything(0)
    t = trainer(tmp_path, [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    t.fit(_GAE(features, full if leak else _adjacency(train_pos)),
          DataLoader(TensorDataset(train_pos), batch_size=32), DataLoader(val, batch_size=len(val)))
    found = serious(read_report(t.log_dir), "target-leakage")
    if leak:
        assert found and found[0]["data"]["kind"] == "graph-links" and found[0]["where"] == "adj", found
        assert found[0]["data"]["positives_in_graph"] == n_val and "RandomLinkSplit" in found[0]["advice"]
    else:
        assert not found, found


def test_edge_lists_and_edge_classification():
    pairs = torch.tensor([[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 4], [3, 5], [5, 7]]).repeat(3, 1)
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0]).repeat(3)
    train_only = torch.tensor([[0, 2], [1, 3]])  # an edge_index (2, E) without the validation edges
    assert graph_leak(pairs, labels, train_only) is None
    assert graph_leak(pairs, labels, pairs[:4].T.contiguous())["positives_in_graph"] == 12
    # edge-type classification: both classes are edges of the graph, membership tells nothing
    assert graph_leak(pairs, labels, pairs.T.contiguous()) is None
    assert fisher_one_sided(3, 0, 0, 3) == pytest.approx(1 / 20)

"""split-overlap on undirected edges stored in both directions: split by rows, the reverse of nearly every validation
edge stays a training positive and fires; split over the undirected pairs (both directions on one side) stays
silent, and so do a directed graph with reciprocal edges and a grid of every id pair."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import LossSteps, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_sanity.callbacks._split_pairs import pair_chance
from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.reversed_pairs import judge_reversed

NODES = 200


def _pairs(g, n=900):
    """Distinct undirected pairs u < v of a sparse graph."""
    codes = torch.unique(torch.randint(0, NODES * NODES, (3 * n,), generator=g))
    u, v = codes // NODES, codes % NODES
    keep = u < v
    return torch.stack([u[keep], v[keep]], 1)[:n]


class LinkPredictor(LossSteps):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(NODES, 16)

    def _loss(self, batch):
        pos = batch[0]
        neg = torch.randint(0, NODES, pos.shape, device=pos.device)
        score = lambda p: (self.emb(p[:, 0]) * self.emb(p[:, 1])).sum(-1)
        logits = torch.cat([score(pos), score(neg)])
        return F.binary_cross_entropy_with_logits(logits, torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]))


@pytest.mark.parametrize("by_rows", [True, False], ids=["directed-rows-split", "undirected-pairs-split"])
def test_undirected_edges_split_as_directed_rows(tmp_path, by_rows):
    g = torch.Generator().manual_seed(0)
    pairs = _pairs(g)
    if by_rows:  # both directions first, then a random split of the rows
        edges = torch.cat([pairs, pairs.flip(1)])[torch.randperm(2 * len(pairs), generator=g)]
        val, train = edges[:180], edges[180:]
    else:  # the undirected pairs split, each side given both directions
        val, train = pairs[:90], pairs[90:]
        val, train = torch.cat([val, val.flip(1)]), torch.cat([train, train.flip(1)])
    val_neg = torch.randint(0, NODES, val.shape, generator=g)
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=1)
    t.fit(LinkPredictor(), DataLoader(TensorDataset(train), batch_size=128, shuffle=True),
          DataLoader(TensorDataset(val, val_neg), batch_size=90))
    report = read_report(t.log_dir)
    detail = {c["name"]: c for c in report["checks"]}["split-overlap"]["detail"]
    assert "id pairs" in detail
    found = serious(report, "split-overlap")
    if by_rows:
        assert len(found) == 1 and found[0]["severity"] == "error" and found[0]["data"]["share"] > 0.8
        assert "is_undirected" in found[0]["advice"]
    else:
        assert found == []


def test_directed_graphs_and_dense_grids_are_not_reversed_pairs():
    g = torch.Generator().manual_seed(0)
    pairs = _pairs(g)
    # A directed graph where half the edges are reciprocated, split at random: not stored symmetrically.
    directed = torch.cat([pairs, pairs[:450].flip(1)])[torch.randperm(1350, generator=g)]
    assert judge_reversed(directed[150:], directed[:150]) is None
    # Every ordered pair of 30 ids (operands of a commutative table): reverses meet training by density alone.
    a, b = torch.meshgrid(torch.arange(30), torch.arange(30), indexing="ij")
    grid = torch.stack([a.reshape(-1), b.reshape(-1)], 1)[torch.randperm(900, generator=g)]
    found = judge_reversed(grid[150:], grid[:150])
    assert found is not None and found["share"] - found["chance"] < 0.1


def test_pair_matches_are_judged_against_the_target_prior():
    g = torch.Generator().manual_seed(0)
    users = torch.arange(100).repeat_interleave(20)
    items = torch.stack([torch.randperm(50, generator=g)[:20] for _ in range(100)]).reshape(-1)
    # Validation items drawn at random for each user: they meet the user's 20 training items 40 % of the time.
    val_users, val_items = torch.arange(100), torch.randint(0, 50, (100,), generator=g)
    expected, sd = pair_chance(users, items, val_users, val_items)
    assert expected == pytest.approx(40, abs=1) and 3 < sd < 6
    # An input training never saw meets nothing; copies of training pairs are judged by the share found.
    assert pair_chance(users, items, torch.tensor([500]), torch.tensor([1])) == (0.0, 0.0)

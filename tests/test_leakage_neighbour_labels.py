"""target-leakage on real Trainers for a full-batch GCN whose node features include a label-propagation feature: built
from every node's label over the GCN's own ``A + I`` normalisation (fires: the columns are ``A_hat @ one_hot(y)``),
over another normalisation with self-loops or handed an edge list (fires: the columns' support is each node's closed
neighbourhood), and the honest ones: training labels only, or every label over the neighbours without self-loops (a
relational classifier whose neighbours' labels are known in use) stay silent."""

from __future__ import annotations

from typing import Any

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import fit_report, serious
from torch import nn
from torch.utils.data import DataLoader

from lightning_sanity.callbacks.leakage import LeakageChecks
from lightning_sanity.callbacks.summary import SanitySummary
from lightning_sanity.checks.neighbour_labels import own_label_columns

N, C = 300, 3


def _graph(kind: str) -> dict:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, C, (N,), generator=g)
    p = 0.004 + 0.012 * (y[:, None] == y[None, :]).float()
    upper = torch.triu((torch.rand(N, N, generator=g) < p).float(), diagonal=1)
    adj = upper + upper.T
    a = adj + torch.eye(N)
    d = a.sum(1).rsqrt()
    a_hat = d[:, None] * a * d[None, :]
    x = F.one_hot(y, C).float() @ torch.randn(C, 8, generator=g) * 0.5 + torch.randn(N, 8, generator=g)
    train = torch.rand(N, generator=g) < 0.5
    one_hot = F.one_hot(y, C).float()
    spread = {"a_hat": a_hat @ one_hot, "row": (a / a.sum(1, keepdim=True)) @ one_hot, "edges": (a / a.sum(1, keepdim=True)) @ one_hot,
              "train-only": adj @ (one_hot * train[:, None]), "no-self": adj @ one_hot}[kind]
    graph = torch.stack(adj.nonzero().T.unbind()) if kind == "edges" else a_hat
    return {"x": torch.cat([x, spread], 1), "graph": graph, "y": y, "mask": train, "a_hat": a_hat}


class GCN(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.lin1, self.lin2 = nn.Linear(8 + C, 16), nn.Linear(16, C)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        a_hat = batch["a_hat"][0]
        h = F.relu(a_hat @ self.lin1(batch["x"][0]))
        logits = a_hat @ self.lin2(h)
        m = batch["mask"][0]
        return F.cross_entropy(logits[m], batch["y"][0][m])

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("kind", ["a_hat", "row", "edges", "train-only", "no-self"])
def test_label_propagation_with_self_loops_fires(tmp_path, kind):
    L.seed_everything(0)
    item = _graph(kind)
    if kind != "edges":
        item.pop("graph")  # the feature's own graph is the model's `a_hat`
    report = fit_report(tmp_path, GCN(), DataLoader([item], batch_size=1),
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    if kind in ("a_hat", "row", "edges"):
        assert found and found[0]["severity"] == "error" and found[0]["data"]["labels"] == "batch['y']", found
        assert found[0]["data"]["columns"] == {str(c): 8 + c for c in range(C)}
        assert "own label" in found[0]["message"]
        assert found[0]["data"]["graph"] == ("batch['graph']" if kind == "edges" else "batch['a_hat']")
    else:
        assert not serious(report), report["findings"]
        target = next(c for c in report["checks"] if c["name"] == "target-leakage")
        assert target["status"] == "pass" and "own label" in target["detail"]


class MoleculeRegressor(L.LightningModule):
    """Sums node features per molecule; the target is one float per molecule."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(C, 1)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        nodes = self.lin(batch["x"]).squeeze(-1)
        per_graph = torch.zeros(batch["y"].shape[0]).index_add(0, batch["graph_of"], nodes)
        return F.mse_loss(per_graph, batch["y"])


def test_neighbourhood_counts_of_an_atom_type_input_stay_silent(tmp_path):
    """Counts of the atom types around each atom, itself included, beside the atom types: an input featurisation of a
    molecule regressor (the loss scores one value per molecule), not a node label in the features."""
    g = torch.Generator().manual_seed(0)
    atoms, graph_of, edges, start = [], [], [], 0
    for m in range(40):  # chains of 8 atoms of 3 types
        atoms.append(torch.randint(0, C, (8,), generator=g)), graph_of.append(torch.full((8,), m))
        edges += [(start + i, start + i + 1) for i in range(7)]
        start += 8
    atom, edge_index = torch.cat(atoms), torch.tensor(edges).T
    a = torch.eye(start)
    a[edge_index[0], edge_index[1]] = a[edge_index[1], edge_index[0]] = 1
    counts = a @ F.one_hot(atom, C).float()
    batch = {"x": counts, "atom": atom, "edge_index": edge_index, "graph_of": torch.cat(graph_of),
             "y": torch.randn(40, generator=g)}
    L.seed_everything(0)
    model = MoleculeRegressor()
    model.configure_optimizers = lambda: torch.optim.Adam(model.parameters(), lr=1e-2)
    report = fit_report(tmp_path, model, DataLoader([batch], batch_size=None),
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    assert not serious(report, "target-leakage"), report["findings"]
    assert own_label_columns(counts, atom, edge_index) == {c: c for c in range(C)}  # the data pattern alone matches


def _cohort(with_outcome: bool) -> dict:
    """A patient-similarity graph: the 10-nearest-neighbour graph of the standardised cohort table, built with the
    outcome column (the leak) or from the feature columns only."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=g)
    y = (torch.rand(400, generator=g) < torch.sigmoid(1.5 * (x[:, 0] - 0.5 * x[:, 1]))).long()
    z = lambda t: (t - t.mean(0)) / t.std(0)  # noqa: E731
    table = torch.cat([x, y[:, None].float()], 1) if with_outcome else x
    dist = torch.cdist(z(table), z(table)).fill_diagonal_(float("inf"))
    adj = torch.zeros(400, 400).scatter_(1, dist.topk(10, largest=False).indices, 1.0)
    a = ((adj + adj.T) > 0).float() + torch.eye(400)
    d = a.sum(1).rsqrt()
    return {"x": torch.cat([z(x), torch.zeros(400, C)], 1), "a_hat": d[:, None] * a * d[None, :], "y": y,
            "mask": torch.rand(400, generator=g) < 0.7}


@pytest.mark.parametrize("with_outcome", [True, False])
def test_similarity_graph_built_with_the_outcome_column_fires(tmp_path, with_outcome):
    L.seed_everything(0)
    report = fit_report(tmp_path, GCN(), DataLoader([_cohort(with_outcome)], batch_size=1),
                        [LeakageChecks(), SanitySummary(print_summary=False)], logger=None, max_steps=2)
    found = serious(report, "target-leakage")
    assert bool(found) is with_outcome, [f["message"] for f in found]
    if found:
        assert found[0]["data"]["k"] == 10 and found[0]["data"]["rebuilt"] > 0.95
        assert found[0]["data"]["features_only"] < 0.85 and found[0]["where"] == "batch['a_hat']"

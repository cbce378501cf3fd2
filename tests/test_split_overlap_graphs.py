"""split-overlap on graph batches in real Trainer runs. Many small graphs (PyG layout): molecules copied before a
random split fire, judged one fingerprint per graph; distinct molecules split once stay silent, although their atoms
(one-hot rows of four kinds) repeat everywhere. One graph per split: a validation graph that holds the training graph
with new nodes attached (inductive node classification) is not judged; one that holds copies of some training nodes
beside new ones still fires."""

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from helpers import digits, read_report, serious, trainer
from torch import nn
from torch.utils.data import DataLoader, random_split

from lightning_sanity.callbacks.split_overlap import SplitOverlap
from lightning_sanity.callbacks.summary import SanitySummary


def _molecules(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        k = int(torch.randint(6, 14, (1,), generator=g))
        atoms = torch.multinomial(torch.tensor([0.6, 0.2, 0.15, 0.05]), k, replacement=True, generator=g)
        parents = torch.tensor([int(torch.randint(0, i, (1,), generator=g)) for i in range(1, k)])
        edges = torch.stack([parents, torch.arange(1, k)])
        out.append({"x": F.one_hot(atoms, 4).float(), "edge_index": torch.cat([edges, edges.flip(0)], 1),
                    "y": int((atoms == 1).sum() >= 2)})
    return out


def _collate(graphs):
    xs, edges, batch, offset = [], [], [], 0
    for i, gr in enumerate(graphs):
        xs.append(gr["x"])
        edges.append(gr["edge_index"] + offset)
        batch.append(torch.full((len(gr["x"]),), i))
        offset += len(gr["x"])
    return {"x": torch.cat(xs), "edge_index": torch.cat(edges, 1), "batch": torch.cat(batch),
            "y": torch.tensor([gr["y"] for gr in graphs])}


class GraphClassifier(L.LightningModule):
    def __init__(self, features=4, classes=2):
        super().__init__()
        self.lin, self.head = nn.Linear(features, 16), nn.Linear(16, classes)

    def forward(self, batch):
        h = torch.relu(self.lin(batch["x"]))
        e = batch["edge_index"]
        h = h + torch.zeros_like(h).index_add_(0, e[1], h[e[0]])
        if "batch" not in batch:  # one graph: a prediction per node
            return self.head(h)
        return self.head(torch.zeros(int(batch["batch"].max()) + 1, 16).index_add_(0, batch["batch"], h))

    def _loss(self, batch):
        logits = self(batch)
        index = batch.get("index")
        return F.cross_entropy(logits if index is None else logits[index], batch["y"][index] if index is not None
                               else batch["y"])

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), batch_size=1)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def _fit(tmp_path, model, train, val):
    L.seed_everything(0)
    t = trainer(tmp_path, [SplitOverlap(), SanitySummary(print_summary=False)], logger=None, max_epochs=2)
    t.fit(model, train, val)
    return read_report(t.log_dir)


def _graph_loaders(graphs):
    train, val = random_split(graphs, [len(graphs) - 120, 120], generator=torch.Generator().manual_seed(1))
    return (DataLoader(train, batch_size=32, shuffle=True, collate_fn=_collate),
            DataLoader(val, batch_size=64, collate_fn=_collate))


def test_molecules_copied_before_the_split_fire(tmp_path):
    graphs = _molecules(300)
    graphs += [gr for gr in graphs[:90] for _ in range(3)]  # the minority oversampled before the split
    (finding,) = serious(_fit(tmp_path, GraphClassifier(), *_graph_loaders(graphs)), "split-overlap")
    assert finding["data"]["share"] > 0.3


def test_distinct_molecules_split_once_stay_silent(tmp_path):
    report = _fit(tmp_path, GraphClassifier(), *_graph_loaders(_molecules(600)))
    check = {c["name"]: c for c in report["checks"]}["split-overlap"]
    assert check["status"] == "pass" and not serious(report)


def _one_graph(x, y, index, k=6):
    # A kNN graph over the rows of x; `index` names the nodes the loss counts.
    near = torch.cdist(x, x).topk(k + 1, largest=False).indices[:, 1:]
    edges = torch.stack([near.reshape(-1), torch.arange(len(x)).repeat_interleave(k)])
    graph = {"x": x, "y": y, "edge_index": edges, "index": index}
    return DataLoader([graph], batch_size=None)


def test_validation_graph_holding_the_training_graph_is_not_judged(tmp_path):
    x, y = digits(900)
    train = _one_graph(x[:600], y[:600], torch.arange(600))
    val = _one_graph(x, y, torch.arange(600, 900))  # the training nodes are the context of the new ones
    report = _fit(tmp_path, GraphClassifier(64, 10), train, val)
    check = {c["name"]: c for c in report["checks"]}["split-overlap"]
    assert check["status"] == "skipped" and "inductive" in check["detail"]
    assert not serious(report)


def test_validation_graph_with_copies_of_some_training_nodes_still_fires(tmp_path):
    x, y = digits(900)
    train = _one_graph(x[:600], y[:600], torch.arange(600))
    val_x, val_y = torch.cat([x[:200], x[600:]]), torch.cat([y[:200], y[600:]])  # 200 training nodes copied in
    val = _one_graph(val_x, val_y, torch.arange(500))
    (finding,) = serious(_fit(tmp_path, GraphClassifier(64, 10), train, val), "split-overlap")
    assert finding["data"]["share"] > 0.3


def _dense_molecules(n, copies, seed=0):
    """``n`` ring molecules with cross-links (10 atoms of 4 kinds, dense adjacency), each exported ``copies`` times
    with its atoms in another order."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        a = torch.zeros(10, 10)
        a[torch.arange(10), (torch.arange(10) + 1) % 10] = 1.0
        i, j = torch.randint(0, 10, (2, 3), generator=g)
        a[i, j] = 1.0
        a = ((a + a.T) > 0).float().fill_diagonal_(0)
        x = F.one_hot(torch.randint(0, 4, (10,), generator=g), 4).float()
        y = x[:, 0] @ a @ x[:, 1] + torch.randn((), generator=g)
        for _ in range(copies):
            p = torch.randperm(10, generator=g)
            rows.append((x[p], a[p][:, p], y))
    return rows


class DenseGIN(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin, self.head = nn.Linear(4, 16), nn.Linear(16, 1)

    def forward(self, x, a):
        h = torch.relu(self.lin(x))
        return self.head((h + a @ h).sum(1)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, a, y = batch
        return F.mse_loss(self(x, a), y)

    def validation_step(self, batch, batch_idx):
        x, a, y = batch
        self.log("val_loss", F.mse_loss(self(x, a), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


@pytest.mark.parametrize("copies", [2, 1])
def test_dense_molecules_in_another_atom_order_across_the_split(tmp_path, copies):
    rows = _dense_molecules(400 // copies, copies)
    train, val = random_split(rows, [len(rows) - 100, 100], generator=torch.Generator().manual_seed(1))
    report = _fit(tmp_path, DenseGIN(), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=50))
    found = serious(report, "split-overlap")
    assert bool(found) is (copies == 2), [f["message"] for f in found]
    if found:  # each validation replicate's twin is in training three times in four
        assert found[0]["data"]["share"] > 0.6

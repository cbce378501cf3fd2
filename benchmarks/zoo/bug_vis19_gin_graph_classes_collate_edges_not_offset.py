"""Bug: graph classification (cycles with chords / random trees / two dense communities joined by a bridge, 12-24
nodes, structure-only node features) with a hand-written GIN: sum aggregation via `index_add_`, mean readout over a
`batch` vector, mini-batches built by a custom `collate_graphs` that concatenates node features, edge lists and a
graph-id vector. The collate function forgets to shift each graph's `edge_index` by the number of nodes already in
the batch, so every graph's edges land on the first graph's nodes (and its neighbours'): the first graphs of a batch
aggregate messages from the whole batch while the others receive none and see only their constant features.
No error, since the indices stay inside the batch. Symptom: val acc 0.33 (chance, val loss 1.15) vs 0.99 (val loss 0.01)
with the fix (offset the edges)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout19"


def random_graph(label, g):
    n = int(torch.randint(12, 25, (1,), generator=g))
    edges = set()
    if label == 0:  # cycle with a few chords
        edges |= {(i, (i + 1) % n) for i in range(n)}
        for _ in range(2):
            a, b = torch.randint(0, n, (2,), generator=g).tolist()
            if a != b:
                edges.add((a, b))
    elif label == 1:  # random recursive tree
        for i in range(1, n):
            edges.add((i, int(torch.randint(0, i, (1,), generator=g))))
    else:  # two dense communities with one bridge
        half = n // 2
        for i in range(n):
            for j in range(i + 1, n):
                if (i < half) == (j < half) and torch.rand(1, generator=g).item() < 0.5:
                    edges.add((i, j))
        edges.add((0, n - 1))
    e = torch.tensor(sorted(edges)).T
    edge_index = torch.cat([e, e.flip(0)], dim=1)  # undirected
    return {"x": torch.ones(n, 1), "edge_index": edge_index, "y": label}


def make_graphs(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [random_graph(i % 3, g) for i in range(n)]


def collate_graphs(graphs):
    xs, edges, batch = [], [], []
    for k, gr in enumerate(graphs):
        xs.append(gr["x"])
        edges.append(gr["edge_index"])
        batch.append(torch.full((gr["x"].shape[0],), k, dtype=torch.long))
    return {"x": torch.cat(xs), "edge_index": torch.cat(edges, dim=1), "batch": torch.cat(batch),
            "y": torch.tensor([gr["y"] for gr in graphs])}


class GINLayer(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(1))
        self.mlp = nn.Sequential(nn.Linear(dim_in, dim_out), nn.ReLU(), nn.Linear(dim_out, dim_out))

    def forward(self, x, edge_index):
        src, dst = edge_index
        agg = torch.zeros_like(x).index_add_(0, dst, x[src])
        return self.mlp((1 + self.eps) * x + agg)


class GIN(L.LightningModule):
    def __init__(self, hidden=32, n_classes=3, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.layers = nn.ModuleList([GINLayer(1, hidden), GINLayer(hidden, hidden), GINLayer(hidden, hidden)])
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_classes))

    def forward(self, x, edge_index, batch):
        h = x
        for layer in self.layers:
            h = F.relu(layer(h, edge_index))
        n_graphs = int(batch.max()) + 1
        pooled = torch.zeros(n_graphs, h.shape[1]).index_add_(0, batch, h)
        counts = torch.bincount(batch, minlength=n_graphs).clamp(min=1).unsqueeze(1)
        return self.head(pooled / counts)

    def _step(self, b, name):
        logits = self(b["x"], b["edge_index"], b["batch"])
        loss = F.cross_entropy(logits, b["y"])
        self.log(f"{name}_loss", loss, batch_size=len(b["y"]), prog_bar=True)
        self.log(f"{name}_acc", (logits.argmax(1) == b["y"]).float().mean(), batch_size=len(b["y"]))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(23)
    train_dl = DataLoader(make_graphs(600, 0), batch_size=32, shuffle=True, collate_fn=collate_graphs)
    val_dl = DataLoader(make_graphs(150, 1), batch_size=50, collate_fn=collate_graphs)
    model = GIN()
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

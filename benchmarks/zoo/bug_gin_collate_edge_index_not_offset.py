"""Bug: a hand-written PyG-style collate for a plain-torch GIN concatenates the graphs' node features and their
`edge_index` tensors but forgets to shift each graph's `edge_index` by the number of nodes before it (the `offset`
bookkeeping is there, the `+ offset` is not). Every graph's bonds then connect nodes 0..k-1 of the batch, i.e. the
atoms of the first graph (or two) of the batch: messages flow between molecules, the first molecule receives every
other molecule's bonds and the others lose theirs; the prediction for a molecule depends on which molecules share
its batch. Otherwise the same script as healthy_gin_molecule_graphs_offset_collate (GIN with sum aggregation via
`index_add_`, BatchNorm MLPs, sum readout per layer, AdamW + cosine; small synthetic molecules, "active" when an
atom of type 0 is bonded to one of type 1). Symptom: val acc 0.73 (val loss 0.79) vs 0.96 (0.20) with the offset."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout6"
TYPES = 4


def make_molecules(n, seed):
    g = torch.Generator().manual_seed(seed)
    graphs = []
    for _ in range(n):
        k = int(torch.randint(8, 17, (1,), generator=g))
        atoms = torch.multinomial(torch.tensor([0.17, 0.17, 0.33, 0.33]), k, replacement=True, generator=g)
        upper = torch.triu(torch.rand(k, k, generator=g) < 2.2 / k, diagonal=1)
        src, dst = upper.nonzero(as_tuple=True)
        edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
        a, b = atoms[edge_index[0]], atoms[edge_index[1]]
        label = int(((a == 0) & (b == 1)).any())
        if torch.rand(1, generator=g) < 0.05:  # assay noise
            label = 1 - label
        graphs.append({"atoms": atoms, "edge_index": edge_index, "y": label})
    return graphs


def collate_graphs(graphs):
    atoms, edges, batch, offset = [], [], [], 0
    for i, gr in enumerate(graphs):
        k = len(gr["atoms"])
        atoms.append(gr["atoms"])
        edges.append(gr["edge_index"])  # BUG: meant gr["edge_index"] + offset
        batch.append(torch.full((k,), i, dtype=torch.long))
        offset += k
    return {"atoms": torch.cat(atoms), "edge_index": torch.cat(edges, dim=1), "batch": torch.cat(batch),
            "y": torch.tensor([gr["y"] for gr in graphs], dtype=torch.float)}


class GINLayer(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(1))
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, h, edge_index):
        src, dst = edge_index
        agg = torch.zeros_like(h).index_add_(0, dst, h[src])
        return self.mlp((1 + self.eps) * h + agg)


class GIN(L.LightningModule):
    def __init__(self, dim=48, layers=3, lr=3e-3, epochs=25):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(TYPES, dim)
        self.layers = nn.ModuleList(GINLayer(dim) for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm1d(dim) for _ in range(layers))
        self.head = nn.Sequential(nn.Linear(dim * (layers + 1), dim), nn.ReLU(), nn.Dropout(0.2), nn.Linear(dim, 1))

    def forward(self, atoms, edge_index, batch):
        h = self.embed(atoms)
        num_graphs = int(batch.max()) + 1
        readouts = [torch.zeros(num_graphs, h.shape[1]).index_add_(0, batch, h)]
        for layer, norm in zip(self.layers, self.norms):
            h = F.relu(norm(layer(h, edge_index)))
            readouts.append(torch.zeros(num_graphs, h.shape[1]).index_add_(0, batch, h))
        return self.head(torch.cat(readouts, dim=1)).squeeze(-1)

    def _step(self, batch, stage):
        logits = self(batch["atoms"], batch["edge_index"], batch["batch"])
        loss = F.binary_cross_entropy_with_logits(logits, batch["y"])
        acc = ((logits > 0).float() == batch["y"]).float().mean()
        n = len(batch["y"])
        self.log(f"{stage}_loss", loss, batch_size=n, prog_bar=stage == "val")
        self.log(f"{stage}_acc", acc, batch_size=n)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def main():
    L.seed_everything(607)
    train_graphs, val_graphs = make_molecules(1200, seed=1), make_molecules(300, seed=2)
    print(f"active share: {sum(g['y'] for g in train_graphs) / len(train_graphs):.2f}")
    train = DataLoader(train_graphs, batch_size=32, shuffle=True, collate_fn=collate_graphs)
    val = DataLoader(val_graphs, batch_size=100, collate_fn=collate_graphs)
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GIN(epochs=25), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={m['val_loss']:.3f} val_acc={m['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

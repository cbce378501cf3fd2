"""Bug: graph classification of small molecule-like graphs from a noisy "assay". Each graph is a random tree of
5-14 atoms (4 atom types) with an occasional ring closure; a molecule is active when it has a ring and at least
two nitrogens, and the recorded assay result flips 12% of the time. Actives are the minority (~22%), so the
author oversamples them. The model is a 3-layer GIN with sum readout; graphs are packed into one disjoint graph
per batch by a custom collate that offsets `edge_index` correctly and builds the `batch` vector.

What is wrong: the oversampling (each active molecule replicated 4x) is done on the whole dataset *before*
`random_split`, so copies of the same active molecule land in both training and validation. The network
memorises those exact graphs including their noisy assay labels, and validation rewards the memorisation: it
looks better than it can possibly be on new molecules. Training is entirely normal. Measured after 30 epochs
(val recall on actives / val loss): 0.625 / 0.597 with the bug vs 0.319 / 0.989 when the split is done first and
only the training part is oversampled (the honest run shows the noisy labels cannot be learned; the buggy one
hides that because the copies it memorised are graded again).
"""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout30"


def random_molecule(g):
    n = int(torch.randint(5, 15, (1,), generator=g))
    atoms = torch.multinomial(torch.tensor([0.6, 0.2, 0.15, 0.05]), n, replacement=True, generator=g)
    parents = [int(torch.randint(0, i, (1,), generator=g)) for i in range(1, n)]
    edges = [(p, i) for i, p in zip(range(1, n), parents)]
    if torch.rand(1, generator=g) < 0.3:
        i, j = torch.randperm(n, generator=g)[:2].tolist()
        if (min(i, j), max(i, j)) not in {(min(a, b), max(a, b)) for a, b in edges}:
            edges.append((i, j))
    has_ring = len(edges) >= n
    active = has_ring and int((atoms == 1).sum()) >= 2
    if torch.rand(1, generator=g) < 0.12:
        active = not active
    src, dst = torch.tensor(edges).T
    edge_index = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    return {"x": F.one_hot(atoms, 4).float(), "edge_index": edge_index, "y": int(active)}


def collate_graphs(graphs):
    xs, eis, batch, offset = [], [], [], 0
    for k, gr in enumerate(graphs):
        n = gr["x"].size(0)
        xs.append(gr["x"])
        eis.append(gr["edge_index"] + offset)
        batch.append(torch.full((n,), k))
        offset += n
    return {"x": torch.cat(xs), "edge_index": torch.cat(eis, 1), "batch": torch.cat(batch),
            "y": torch.tensor([gr["y"] for gr in graphs])}


class AssayData(L.LightningDataModule):
    def __init__(self, n_graphs=700, oversample=4, batch_size=64):
        super().__init__()
        self.n_graphs, self.oversample, self.batch_size = n_graphs, oversample, batch_size

    def setup(self, stage=None):
        g = torch.Generator().manual_seed(300)
        graphs = [random_molecule(g) for _ in range(self.n_graphs)]
        actives = [gr for gr in graphs if gr["y"] == 1]
        graphs = graphs + actives * (self.oversample - 1)
        n_val = len(graphs) // 4
        self.train_ds, self.val_ds = random_split(graphs, [len(graphs) - n_val, n_val],
                                                  generator=torch.Generator().manual_seed(1))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True, collate_fn=collate_graphs)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=256, collate_fn=collate_graphs)


class GINLayer(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(1))
        self.mlp = nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out))

    def forward(self, h, edge_index):
        agg = torch.zeros_like(h).index_add_(0, edge_index[1], h[edge_index[0]])
        return self.mlp((1 + self.eps) * h + agg)


class AssayGIN(L.LightningModule):
    def __init__(self, hidden=128, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.layers = nn.ModuleList([GINLayer(4, hidden), GINLayer(hidden, hidden), GINLayer(hidden, hidden)])
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2))

    def forward(self, batch):
        h = batch["x"]
        for layer in self.layers:
            h = F.relu(layer(h, batch["edge_index"]))
        n_graphs = int(batch["batch"].max()) + 1
        pooled = torch.zeros(n_graphs, h.size(1)).index_add_(0, batch["batch"], h)
        return self.head(pooled)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch), batch["y"])
        self.log("train_loss", loss, batch_size=batch["y"].numel())
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        y = batch["y"]
        pred = logits.argmax(1)
        n = y.numel()
        self.log("val_loss", F.cross_entropy(logits, y), batch_size=n)
        self.log("val_acc", (pred == y).float().mean(), batch_size=n)
        self.log("val_active_recall", (pred[y == 1] == 1).float().mean(), batch_size=n)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(31)
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(AssayGIN(), datamodule=AssayData())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_active_recall={m['val_active_recall'].item():.3f} val_acc={m['val_acc'].item():.3f} "
          f"val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: graph-level regression with a hand-written GIN. Each graph is a random geometric graph (8 to 24 nodes
uniform in the unit square, connected when closer than a per-graph radius 0.2-0.45), from a seeded torch.Generator;
the target is log(1 + number of triangles), standardised with training-set mean and std. Node features are the
centred coordinates and a constant channel.

A custom collate concatenates node features, offsets every graph's edge indices by the number of nodes that come
before it in the batch, and builds the batch vector, so messages never cross graphs. Three GIN layers compute MLP((1
+ eps) h_i + sum_j h_j) with `index_add_` over both edge directions (eps learned); the readout is the per-graph mean
of node states (`index_add_` divided by node counts) concatenated with log(node count), followed by an MLP. MSE on
the standardised target, so the initial loss is close to 1 (the target variance); AdamW with OneCycleLR stepped per
batch. Validation reports MSE and R^2 on held-out graphs. Measured: initial MSE 1.05, val MSE 0.027 (R^2 0.975)
after 15 epochs."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout22"


def geometric_graphs(count, g):
    graphs = []
    for _ in range(count):
        n = int(torch.randint(8, 25, (1,), generator=g))
        pos = torch.rand(n, 2, generator=g)
        radius = 0.2 + 0.25 * float(torch.rand(1, generator=g))
        adj = (torch.cdist(pos, pos) < radius) & ~torch.eye(n, dtype=torch.bool)
        triangles = torch.trace(torch.linalg.matrix_power(adj.float(), 3)) / 6
        edges = torch.nonzero(torch.triu(adj, diagonal=1)).T
        x = torch.cat([pos - 0.5, torch.ones(n, 1)], 1)
        graphs.append({"x": x, "edge_index": edges, "y": torch.log1p(triangles)})
    return graphs


def collate_graphs(graphs):
    counts = torch.tensor([gr["x"].shape[0] for gr in graphs])
    offsets = torch.cumsum(counts, 0) - counts
    edges = torch.cat([gr["edge_index"] + off for gr, off in zip(graphs, offsets)], 1)
    return {"x": torch.cat([gr["x"] for gr in graphs]),
            "edge_index": torch.cat([edges, edges.flip(0)], 1),
            "batch": torch.repeat_interleave(torch.arange(len(graphs)), counts),
            "counts": counts,
            "y": torch.stack([gr["y"] for gr in graphs])}


class GINLayer(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.eps = nn.Parameter(torch.zeros(1))
        self.mlp = nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out))

    def forward(self, h, edge_index):
        src, dst = edge_index
        agg = torch.zeros_like(h).index_add_(0, dst, h[src])
        return self.mlp((1 + self.eps) * h + agg)


class TriangleGIN(L.LightningModule):
    def __init__(self, y_mean, y_std, hidden=64, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.layers = nn.ModuleList([GINLayer(3, hidden), GINLayer(hidden, hidden), GINLayer(hidden, hidden)])
        self.head = nn.Sequential(nn.Linear(hidden + 1, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, batch):
        h = batch["x"]
        for layer in self.layers:
            h = F.relu(layer(h, batch["edge_index"]))
        pooled = torch.zeros(len(batch["counts"]), h.shape[1]).index_add_(0, batch["batch"], h)
        pooled = pooled / batch["counts"][:, None]
        return self.head(torch.cat([pooled, torch.log(batch["counts"].float())[:, None]], 1)).squeeze(1)

    def _target(self, batch):
        return (batch["y"] - self.hparams.y_mean) / self.hparams.y_std

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch), self._target(batch))
        self.log("train_loss", loss, batch_size=len(batch["counts"]))
        return loss

    def validation_step(self, batch, batch_idx):
        target = self._target(batch)
        mse = F.mse_loss(self(batch), target)
        self.log_dict({"val_loss": mse, "val_r2": 1 - mse / target.var(unbiased=False)},
                      batch_size=len(batch["counts"]))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2213)
    g = torch.Generator().manual_seed(14)
    train, val = geometric_graphs(1200, g), geometric_graphs(300, g)
    ys = torch.stack([gr["y"] for gr in train])
    model = TriangleGIN(float(ys.mean()), float(ys.std()))
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate_graphs),
                DataLoader(val, batch_size=300, collate_fn=collate_graphs))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_mse={float(m['val_loss']):.3f} val_r2={float(m['val_r2']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: graph regression on molecule-like graphs with bond-type edge features. The target is an additive
bond-contribution property (sum over bonds of a table c[bond, atom u, atom v] plus noise), standardised with the
training graphs' statistics. 3-layer GINE with hand-written message passing (`index_add_`), sum readout over the
`batch` vector, MLP head with one output, MSE loss, ReduceLROnPlateau on val_loss.

What is wrong: the head returns shape [B, 1] and the targets have shape [B]; `F.mse_loss(pred, y)` broadcasts
them to [B, B] (PyTorch only emits a UserWarning, which nobody reads), so every prediction is regressed towards
the targets of *all* graphs in the batch. The optimum is the batch mean, the loss falls a little to about the
target variance, and the model never learns the per-molecule property. Measured: val RMSE 3.12 (val loss 1.002 in
standardised units, i.e. no better than predicting the mean) with the bug vs 1.14 (0.133) when the output is
squeezed to [B].
"""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout30"


def make_molecules(n_graphs, seed):
    g = torch.Generator().manual_seed(seed)
    table = torch.randn(3, 4, 4, generator=g)
    table = (table + table.transpose(1, 2)) / 2
    graphs = []
    for _ in range(n_graphs):
        n = int(torch.randint(5, 15, (1,), generator=g))
        atoms = torch.multinomial(torch.tensor([0.55, 0.2, 0.15, 0.1]), n, replacement=True, generator=g)
        pairs = [(int(torch.randint(0, i, (1,), generator=g)), i) for i in range(1, n)]
        if torch.rand(1, generator=g) < 0.3 and n > 4:
            pairs.append((0, n - 1))
        src, dst = torch.tensor(pairs).T
        bonds = torch.multinomial(torch.tensor([0.6, 0.25, 0.15]), len(pairs), replacement=True, generator=g)
        y = table[bonds, atoms[src], atoms[dst]].sum() + 0.1 * torch.randn((), generator=g)
        graphs.append({"atoms": atoms, "edge_index": torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1),
                       "bonds": torch.cat([bonds, bonds]), "y": float(y)})
    return graphs


class MoleculeData(L.LightningDataModule):
    def setup(self, stage=None):
        graphs = make_molecules(1000, seed=3031)
        self.train_graphs, self.val_graphs = graphs[:800], graphs[800:]
        ys = torch.tensor([gr["y"] for gr in self.train_graphs])
        self.y_mean, self.y_std = ys.mean().item(), ys.std().item()

    def collate(self, graphs):
        atoms, eis, bonds, batch, offset = [], [], [], [], 0
        for k, gr in enumerate(graphs):
            n = gr["atoms"].numel()
            atoms.append(gr["atoms"])
            eis.append(gr["edge_index"] + offset)
            bonds.append(gr["bonds"])
            batch.append(torch.full((n,), k))
            offset += n
        y = (torch.tensor([gr["y"] for gr in graphs]) - self.y_mean) / self.y_std
        return {"x": F.one_hot(torch.cat(atoms), 4).float(), "edge_index": torch.cat(eis, 1),
                "edge_attr": F.one_hot(torch.cat(bonds), 3).float(), "batch": torch.cat(batch), "y": y}

    def train_dataloader(self):
        return DataLoader(self.train_graphs, batch_size=32, shuffle=True, collate_fn=self.collate)

    def val_dataloader(self):
        return DataLoader(self.val_graphs, batch_size=200, collate_fn=self.collate)


class GINEConv(nn.Module):
    def __init__(self, d_in, d_out, d_edge=3):
        super().__init__()
        self.edge_lin = nn.Linear(d_edge, d_in)
        self.eps = nn.Parameter(torch.zeros(1))
        self.mlp = nn.Sequential(nn.Linear(d_in, d_out), nn.ReLU(), nn.Linear(d_out, d_out))

    def forward(self, h, edge_index, edge_attr):
        src, dst = edge_index
        msg = F.relu(h[src] + self.edge_lin(edge_attr))
        agg = torch.zeros_like(h).index_add_(0, dst, msg)
        return self.mlp((1 + self.eps) * h + agg)


class BondPropertyGINE(L.LightningModule):
    def __init__(self, y_std, hidden=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.convs = nn.ModuleList([GINEConv(4, hidden), GINEConv(hidden, hidden), GINEConv(hidden, hidden)])
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, batch):
        h = batch["x"]
        for conv in self.convs:
            h = F.relu(conv(h, batch["edge_index"], batch["edge_attr"]))
        n_graphs = int(batch["batch"].max()) + 1
        pooled = torch.zeros(n_graphs, h.size(1)).index_add_(0, batch["batch"], h)
        return self.head(pooled)

    def training_step(self, batch, batch_idx):
        loss = F.mse_loss(self(batch), batch["y"])
        self.log("train_loss", loss, batch_size=batch["y"].numel())
        return loss

    def validation_step(self, batch, batch_idx):
        pred = self(batch)
        n = batch["y"].numel()
        mse = F.mse_loss(pred, batch["y"])
        self.log("val_loss", mse, batch_size=n)
        self.log("val_rmse", mse.sqrt() * self.hparams.y_std, batch_size=n)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(305)
    dm = MoleculeData()
    dm.setup()
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BondPropertyGINE(y_std=dm.y_std), datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_rmse={m['val_rmse'].item():.3f} val_loss={m['val_loss'].item():.4f} y_std={dm.y_std:.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

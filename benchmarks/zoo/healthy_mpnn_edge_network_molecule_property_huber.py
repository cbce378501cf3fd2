"""Healthy: a hand-written message-passing neural network (edge network in the spirit of Gilmer et al.: messages
depend on the sender's state and the bond type, GRU-style node update, sum readout) for a graph-level property of
small synthetic "molecules" (random trees plus a few ring bonds, 6-20 atoms, 5 atom types, 3 bond types). The
property is a sum of bond contributions that depend on both atoms and the bond type, plus noise. Graphs are batched
by concatenating nodes and offsetting edge indices in the collate function; readout with `index_add_` over the batch
vector. Target standardised on the training set, Huber loss, AdamW, ReduceLROnPlateau on val loss, gradient
clipping. Final: val MAE 0.18 in standard units (predicting the mean gives 0.76)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout11"
N_ATOM, N_BOND = 5, 3


def make_molecules(n, seed, table):
    g = torch.Generator().manual_seed(seed)
    mols = []
    for _ in range(n):
        k = int(torch.randint(6, 21, (1,), generator=g))
        atoms = torch.randint(0, N_ATOM, (k,), generator=g)
        src = [int(torch.randint(0, i, (1,), generator=g)) for i in range(1, k)]
        dst = list(range(1, k))
        for _ in range(int(torch.randint(0, 3, (1,), generator=g))):
            a, b = torch.randperm(k, generator=g)[:2].tolist()
            src.append(a)
            dst.append(b)
        src, dst = torch.tensor(src), torch.tensor(dst)
        bonds = torch.randint(0, N_BOND, (len(src),), generator=g)
        y = table[atoms[src], atoms[dst], bonds].sum() + table[atoms[dst], atoms[src], bonds].sum()
        y = y + 0.1 * torch.randn(1, generator=g).squeeze()
        # undirected: store both directions
        edges = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
        mols.append({"atoms": atoms, "edges": edges, "bonds": torch.cat([bonds, bonds]), "y": y})
    return mols


class Molecules(Dataset):
    def __init__(self, mols, mean, std):
        self.mols, self.mean, self.std = mols, mean, std

    def __len__(self):
        return len(self.mols)

    def __getitem__(self, i):
        m = self.mols[i]
        return {**m, "y": (m["y"] - self.mean) / self.std}


def collate(items):
    offset, edges, batch = 0, [], []
    for gi, it in enumerate(items):
        edges.append(it["edges"] + offset)
        batch.append(torch.full((len(it["atoms"]),), gi))
        offset += len(it["atoms"])
    return {"atoms": torch.cat([it["atoms"] for it in items]), "edges": torch.cat(edges, 1),
            "bonds": torch.cat([it["bonds"] for it in items]), "batch": torch.cat(batch),
            "y": torch.stack([it["y"] for it in items])}


class EdgeNetworkLayer(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.msg = nn.ModuleList(nn.Linear(d, d) for _ in range(N_BOND))
        self.update = nn.GRUCell(d, d)

    def forward(self, h, edges, bonds):
        src, dst = edges
        m = torch.zeros_like(h[src])
        for b, lin in enumerate(self.msg):
            sel = bonds == b
            m[sel] = lin(h[src[sel]])
        agg = torch.zeros_like(h).index_add_(0, dst, m)
        return self.update(agg, h)


class MPNN(L.LightningModule):
    def __init__(self, d=64, steps=3, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.atom_emb = nn.Embedding(N_ATOM, d)
        self.layers = nn.ModuleList(EdgeNetworkLayer(d) for _ in range(steps))
        self.readout = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, 1))

    def forward(self, batch):
        h = self.atom_emb(batch["atoms"])
        for layer in self.layers:
            h = layer(h, batch["edges"], batch["bonds"])
        per_atom = self.readout(h).squeeze(-1)
        return torch.zeros(len(batch["y"]), dtype=per_atom.dtype).index_add_(0, batch["batch"], per_atom)

    def training_step(self, batch, batch_idx):
        loss = F.huber_loss(self(batch), batch["y"], delta=1.0)
        self.log("train_loss", loss, batch_size=len(batch["y"]))
        return loss

    def validation_step(self, batch, batch_idx):
        pred = self(batch)
        self.log("val_loss", F.huber_loss(pred, batch["y"]), batch_size=len(batch["y"]))
        self.log("val_mae", (pred - batch["y"]).abs().mean(), prog_bar=True, batch_size=len(batch["y"]))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(127)
    table = torch.randn(N_ATOM, N_ATOM, N_BOND, generator=torch.Generator().manual_seed(8)) * 0.5
    train_m, val_m = make_molecules(2500, 1, table), make_molecules(500, 2, table)
    ys = torch.stack([m["y"] for m in train_m])
    mean, std = ys.mean(), ys.std()
    train = DataLoader(Molecules(train_m, mean, std), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(Molecules(val_m, mean, std), batch_size=250, collate_fn=collate)
    model = MPNN()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        gradient_clip_val=5.0, logger=TensorBoardLogger("lightning_logs", name="mpnn"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    val_y = torch.stack([(m["y"] - mean) / std for m in val_m])
    print(f"SYMPTOM val MAE {trainer.callback_metrics['val_mae'].item():.3f} "
          f"(mean predictor {(val_y - val_y.mean()).abs().mean().item():.3f})")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a small graph transformer that counts rings in molecule-like graphs (0, 1 or 2 ring closures added to a
random tree). Graphs are batched densely (features, adjacency and node mask padded to the largest graph in the
batch); random-walk positional encodings diag((D^-1 A)^k) are computed per graph; attention is masked to each
node's neighbours and itself. Warm-up + cosine schedule.

What is wrong: the masked-mean readout divides by `mask.sum()` -- the number of real nodes in the *whole batch* --
instead of `mask.sum(1)`, each graph's own node count. Every graph's pooled vector is therefore scaled by the size
of the other graphs in its batch (about 1/32 of a mean at training batch size 32, 1/90 at validation batch size 90),
so a graph's prediction depends on its batch-mates. Training still converges because the head adapts to the typical
training scale, but the validation batches carry a different scale. Measured: val acc 0.867 (val loss 0.662) with the
bug vs 0.972 (0.089) with the per-graph mean.
"""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout30"
N_ATOM_TYPES = 4
RW_STEPS = 8


def ring_molecule(g):
    n = int(torch.randint(6, 16, (1,), generator=g))
    atoms = torch.multinomial(torch.tensor([0.6, 0.2, 0.15, 0.05]), n, replacement=True, generator=g)
    adj = torch.zeros(n, n, dtype=torch.bool)
    for i in range(1, n):
        p = int(torch.randint(0, i, (1,), generator=g))
        adj[p, i] = adj[i, p] = True
    n_rings = int(torch.randint(0, 3, (1,), generator=g))
    added = 0
    while added < n_rings:
        i, j = torch.randperm(n, generator=g)[:2].tolist()
        if not adj[i, j]:
            adj[i, j] = adj[j, i] = True
            added += 1
    return {"atoms": atoms, "adj": adj, "y": n_rings}


def random_walk_pe(adj):
    a = adj.float()
    walk = a / a.sum(1, keepdim=True).clamp(min=1.0)
    power, feats = torch.eye(a.size(0)), []
    for _ in range(RW_STEPS):
        power = power @ walk
        feats.append(power.diagonal())
    return torch.stack(feats, 1)


def dense_collate(graphs):
    b, n_max = len(graphs), max(gr["atoms"].numel() for gr in graphs)
    x = torch.zeros(b, n_max, N_ATOM_TYPES + RW_STEPS)
    adj = torch.zeros(b, n_max, n_max, dtype=torch.bool)
    mask = torch.zeros(b, n_max, dtype=torch.bool)
    for k, gr in enumerate(graphs):
        n = gr["atoms"].numel()
        x[k, :n] = torch.cat([F.one_hot(gr["atoms"], N_ATOM_TYPES).float(), random_walk_pe(gr["adj"])], 1)
        adj[k, :n, :n] = gr["adj"]
        mask[k, :n] = True
    return {"x": x, "adj": adj, "mask": mask, "y": torch.tensor([gr["y"] for gr in graphs])}


class RingData(L.LightningDataModule):
    def setup(self, stage=None):
        g = torch.Generator().manual_seed(3030)
        graphs = [ring_molecule(g) for _ in range(900)]
        self.train_graphs, self.val_graphs = graphs[:720], graphs[720:]

    def train_dataloader(self):
        return DataLoader(self.train_graphs, batch_size=32, shuffle=True, collate_fn=dense_collate)

    def val_dataloader(self):
        return DataLoader(self.val_graphs, batch_size=90, collate_fn=dense_collate)


class GraphTransformerBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, h, adj):
        eye = torch.eye(adj.size(1), dtype=torch.bool)
        blocked = ~(adj | eye)
        attn_mask = blocked.repeat_interleave(self.heads, dim=0)
        a, _ = self.attn(self.norm1(h), self.norm1(h), self.norm1(h), attn_mask=attn_mask, need_weights=False)
        h = h + a
        return h + self.ff(self.norm2(h))


class RingTransformer(L.LightningModule):
    def __init__(self, d=64, heads=4, n_layers=3, lr=2e-3, warmup=40):
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Linear(N_ATOM_TYPES + RW_STEPS, d)
        self.blocks = nn.ModuleList([GraphTransformerBlock(d, heads) for _ in range(n_layers)])
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 3))

    def forward(self, batch):
        h = self.embed(batch["x"])
        for block in self.blocks:
            h = block(h, batch["adj"])
        m = batch["mask"].unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum()
        return self.head(pooled)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch), batch["y"])
        self.log("train_loss", loss, batch_size=batch["y"].numel())
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        n = batch["y"].numel()
        self.log("val_loss", F.cross_entropy(logits, batch["y"]), batch_size=n)
        self.log("val_acc", (logits.argmax(1) == batch["y"]).float().mean(), batch_size=n)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def factor(step):
            if step < warm:
                return (step + 1) / warm
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(304)
    trainer = L.Trainer(max_epochs=9, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RingTransformer(), datamodule=RingData())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

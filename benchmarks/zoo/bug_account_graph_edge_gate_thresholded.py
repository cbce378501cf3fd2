"""Bug: a hand-written edge-gated message-passing network for account-type classification on a transaction graph
(edge list + `index_add_` aggregation, full-batch, train/val node masks). Two thirds of the edges are incidental
transfers between unrelated accounts; their edge features (amount, hour, channel, ...) differ statistically from
the edges inside a customer segment, so an edge MLP can learn to gate them out. The author wanted a "clean" keep/drop
decision and wrote `gate = (torch.sigmoid(self.edge_mlp(e)) > 0.5).float()`: the comparison has no gradient, the
edge MLP never receives one and stays at its random initialisation, keeping and dropping edges at random, so the
noisy edges keep polluting every aggregation. Symptom: val node accuracy 0.71 vs 0.97 with the soft gate
`torch.sigmoid(self.edge_mlp(e))`."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout11"
N_NODES, N_CLASSES, N_FEAT, N_EDGE_FEAT = 1500, 5, 16, 8


def make_transaction_graph(seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_CLASSES, (N_NODES,), generator=g)
    by_class = [torch.where(y == c)[0] for c in range(N_CLASSES)]
    src, dst, noisy = [], [], []
    for v in range(N_NODES):
        peers = by_class[int(y[v])]
        same = peers[torch.randint(0, len(peers), (4,), generator=g)]
        other = torch.randint(0, N_NODES, (8,), generator=g)
        src += [v] * 12
        dst += same.tolist() + other.tolist()
        noisy += [0] * 4 + [1] * 8
    src, dst, noisy = torch.tensor(src), torch.tensor(dst), torch.tensor(noisy).float()
    direction = torch.randn(N_EDGE_FEAT, generator=g)
    edge_attr = torch.randn(len(src), N_EDGE_FEAT, generator=g) + 1.2 * noisy[:, None] * direction
    centroids = torch.randn(N_CLASSES, N_FEAT, generator=g)
    x = 0.35 * centroids[y] + torch.randn(N_NODES, N_FEAT, generator=g)
    perm = torch.randperm(N_NODES, generator=g)
    train_mask, val_mask = torch.zeros(N_NODES, dtype=torch.bool), torch.zeros(N_NODES, dtype=torch.bool)
    train_mask[perm[:400]], val_mask[perm[400:900]] = True, True
    return {"x": x, "src": src, "dst": dst, "edge_attr": edge_attr, "y": y,
            "train_mask": train_mask, "val_mask": val_mask}


class FullGraph(Dataset):
    def __init__(self, graph):
        self.graph = graph

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.graph


class GatedConv(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.msg = nn.Linear(d_in, d_out)
        self.self_lin = nn.Linear(d_in, d_out)
        self.edge_mlp = nn.Sequential(nn.Linear(N_EDGE_FEAT, 16), nn.ReLU(), nn.Linear(16, 1))

    def forward(self, x, src, dst, edge_attr):
        gate = (torch.sigmoid(self.edge_mlp(edge_attr)) > 0.5).float()
        m = gate * self.msg(x)[dst]
        agg = torch.zeros(x.shape[0], m.shape[1], dtype=m.dtype).index_add_(0, src, m)
        deg = torch.zeros(x.shape[0], 1, dtype=m.dtype).index_add_(0, src, gate).clamp_min(1.0)
        return self.self_lin(x) + agg / deg


class EdgeGatedGNN(L.LightningModule):
    def __init__(self, hidden=32, lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.conv1 = GatedConv(N_FEAT, hidden)
        self.conv2 = GatedConv(hidden, hidden)
        self.head = nn.Linear(hidden, N_CLASSES)

    def forward(self, b):
        h = F.relu(self.conv1(b["x"], b["src"], b["dst"], b["edge_attr"]))
        h = F.dropout(h, 0.3, self.training)
        h = F.relu(self.conv2(h, b["src"], b["dst"], b["edge_attr"]))
        return self.head(h)

    def _step(self, batch, mask_key):
        b = {k: v[0] for k, v in batch.items()}
        logits, mask = self(b), b[mask_key]
        loss = F.cross_entropy(logits[mask], b["y"][mask])
        return loss, (logits[mask].argmax(-1) == b["y"][mask]).float().mean()

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch, "train_mask")
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch, "val_mask")
        self.log("val_loss", loss)
        self.log("val_acc", acc, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)


def main():
    L.seed_everything(61)
    loader = DataLoader(FullGraph(make_transaction_graph(9)), batch_size=1)
    model = EdgeGatedGNN()
    trainer = L.Trainer(max_epochs=100, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="edge_gated_gnn"), log_every_n_steps=1,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, loader, loader)
    print(f"SYMPTOM val node acc {trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

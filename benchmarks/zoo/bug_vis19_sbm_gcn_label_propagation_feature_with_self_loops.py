"""Bug: full-batch two-layer GCN (hand-written message passing, symmetric normalisation with self-loops, plus a root-weight skip) for node
classification on a synthetic 4-community stochastic-block-model graph with noisy node attributes. To help the GCN
the user appends a "label propagation" feature: the normalised neighbourhood histogram of the known labels, a
well-known trick. Two slips make it a leak: the histogram is built from `y` for *every* node (val nodes included,
instead of the training labels only), and it reuses the GCN's `A + I` normalised adjacency, so each node's own
one-hot label sits in its own feature vector. The model reads the answer off its input. Symptom: val acc 0.93
vs 0.79 (val loss 0.27 vs 0.73) with the fix (histogram of training labels only, propagated over A without self-loops)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout19"
N_NODES, N_CLASSES, N_FEAT = 800, 4, 16


def make_sbm(seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_CLASSES, (N_NODES,), generator=g)
    same = (y[:, None] == y[None, :]).float()
    p = 0.003 + 0.008 * same  # weakly assortative
    upper = torch.triu((torch.rand(N_NODES, N_NODES, generator=g) < p).float(), diagonal=1)
    adj = upper + upper.T
    centers = torch.randn(N_CLASSES, N_FEAT, generator=g) * 0.6
    x = centers[y] + torch.randn(N_NODES, N_FEAT, generator=g) * 1.4
    perm = torch.randperm(N_NODES, generator=g)
    train_mask = torch.zeros(N_NODES, dtype=torch.bool)
    val_mask = torch.zeros(N_NODES, dtype=torch.bool)
    train_mask[perm[:480]] = True
    val_mask[perm[480:]] = True
    return x, y, adj, train_mask, val_mask


def normalize_adj(adj, self_loops=True):
    if self_loops:
        adj = adj + torch.eye(adj.shape[0])
    deg = adj.sum(1).clamp(min=1)
    d = deg.pow(-0.5)
    return d[:, None] * adj * d[None, :]


class FullGraph(Dataset):
    """One item: the whole graph (full-batch training)."""

    def __init__(self, graph, mask):
        self.graph, self.mask = graph, mask

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return (*self.graph, self.mask)


class GCN(L.LightningModule):
    def __init__(self, in_dim, hidden=64, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.lin1 = nn.Linear(in_dim, hidden)
        self.root1 = nn.Linear(in_dim, hidden, bias=False)
        self.lin2 = nn.Linear(hidden, N_CLASSES)
        self.root2 = nn.Linear(hidden, N_CLASSES, bias=False)
        self.dropout = nn.Dropout(0.5)

    def forward(self, x, a_hat):
        h = F.relu(a_hat @ self.lin1(x) + self.root1(x))
        h = self.dropout(h)
        return a_hat @ self.lin2(h) + self.root2(h)

    def _step(self, batch, name):
        x, a_hat, y, mask = (t.squeeze(0) for t in batch)
        logits = self(x, a_hat)
        loss = F.cross_entropy(logits[mask], y[mask])
        acc = (logits[mask].argmax(1) == y[mask]).float().mean()
        self.log(f"{name}_loss", loss, prog_bar=True)
        self.log(f"{name}_acc", acc, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)


def main():
    L.seed_everything(19)
    x, y, adj, train_mask, val_mask = make_sbm()
    a_hat = normalize_adj(adj)
    # label-propagation feature: neighbourhood histogram of known labels
    label_hist = a_hat @ F.one_hot(y, N_CLASSES).float()
    feats = torch.cat([x, label_hist], dim=1)
    graph = (feats, a_hat, y)
    train_dl = DataLoader(FullGraph(graph, train_mask), batch_size=1)
    val_dl = DataLoader(FullGraph(graph, val_mask), batch_size=1)
    model = GCN(feats.shape[1])
    trainer = L.Trainer(max_epochs=150, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

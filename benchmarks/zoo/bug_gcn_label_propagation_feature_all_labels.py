"""Bug: a plain-torch GCN (Kipf & Welling: symmetric-normalised adjacency with self-loops, two graph convolutions,
dropout, Adam with weight decay on the first layer) for transductive node classification on a synthetic
4-community citation graph, trained full-batch with train/val/test node masks. The feature engineering adds a
"label propagation" feature, `A_hat @ one_hot(labels)`, that was meant to use only the labels of TRAINING nodes
(`one_hot(y) * train_mask[:, None]`) but is computed from `one_hot(y)` of every node. `A_hat` has self-loops, so
each node's feature contains its own label, and its val/test neighbours' labels, which are unknown at prediction
time. Validation agrees with the leak: val acc 0.894 / val loss 0.33 vs 0.839 / 0.44 for the same GCN without the
feature (healthy_gcn_citation_graph_full_batch); used for real (the feature rebuilt from training labels only, as it
must be when the other labels are unknown) the leaky model's test acc is 0.829, below the honest GCN's 0.858."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout6"
N, C, D = 600, 4, 16


def make_graph(seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(N) % C
    y = y[torch.randperm(N, generator=g)]
    same = y[:, None] == y[None, :]
    prob = torch.where(same, torch.tensor(0.03), torch.tensor(0.008))
    upper = torch.triu(torch.rand(N, N, generator=g) < prob, diagonal=1)
    adj = (upper | upper.T).float()
    centers = torch.randn(C, D, generator=g) * 0.45
    x = centers[y] + torch.randn(N, D, generator=g)
    perm = torch.randperm(N, generator=g)
    masks = [torch.zeros(N, dtype=torch.bool) for _ in range(3)]
    masks[0][perm[:180]], masks[1][perm[180:360]], masks[2][perm[360:]] = True, True, True
    return x, adj, y, masks


def normalized_adjacency(adj):
    a = adj + torch.eye(adj.shape[0])
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


class FullGraph(Dataset):
    """One item: the whole graph, with the mask of the nodes whose loss counts."""

    def __init__(self, x, a_hat, y, mask):
        self.item = {"x": x, "a_hat": a_hat, "y": y, "mask": mask}

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return self.item


class GCN(L.LightningModule):
    def __init__(self, in_dim, hidden=32, lr=1e-2, weight_decay=5e-4):
        super().__init__()
        self.save_hyperparameters()
        self.conv1 = nn.Linear(in_dim, hidden)
        self.conv2 = nn.Linear(hidden, C)
        self.drop = nn.Dropout(0.5)

    def forward(self, x, a_hat):
        h = F.relu(a_hat @ self.conv1(self.drop(x)))
        return a_hat @ self.conv2(self.drop(h))

    def _step(self, batch, stage):
        logits = self(batch["x"], batch["a_hat"])
        m = batch["mask"]
        loss = F.cross_entropy(logits[m], batch["y"][m])
        acc = (logits[m].argmax(-1) == batch["y"][m]).float().mean()
        self.log(f"{stage}_loss", loss, batch_size=int(m.sum()), prog_bar=stage == "val")
        self.log(f"{stage}_acc", acc, batch_size=int(m.sum()))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam([
            {"params": self.conv1.parameters(), "weight_decay": self.hparams.weight_decay},
            {"params": self.conv2.parameters(), "weight_decay": 0.0},
        ], lr=self.hparams.lr)


def main():
    L.seed_everything(606)
    x, adj, y, (train_m, val_m, test_m) = make_graph()
    a_hat = normalized_adjacency(adj)
    known = F.one_hot(y, C).float()  # BUG: meant F.one_hot(y, C).float() * train_m[:, None]
    feats = torch.cat([x, a_hat @ known], dim=1)
    unbatch = lambda items: items[0]
    train = DataLoader(FullGraph(feats, a_hat, y, train_m), batch_size=1, collate_fn=unbatch)
    val = DataLoader(FullGraph(feats, a_hat, y, val_m), batch_size=1, collate_fn=unbatch)
    model = GCN(feats.shape[1])
    trainer = L.Trainer(max_epochs=150, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train, val)
    model.eval()
    with torch.no_grad():
        honest = torch.cat([x, a_hat @ (F.one_hot(y, C).float() * train_m[:, None])], dim=1)
        test_acc = (model(honest, a_hat)[test_m].argmax(-1) == y[test_m]).float().mean()
    m = trainer.callback_metrics
    print(f"val_loss={m['val_loss']:.3f} val_acc={m['val_acc']:.3f} test_acc(train labels only)={test_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

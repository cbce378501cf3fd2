"""Bug: transductive GCN on a patient-similarity graph (synthetic cohort of 1000 patients, 10 lab/vital columns
that only weakly predict a binary 30-day readmission outcome). The cohort arrives as one exported matrix whose last
column is the outcome; the node features correctly drop it (`cohort[:, :-1]`), but the k-nearest-neighbour graph is
built on the standardised *whole* table, outcome column included. After z-scoring, the 0/1 outcome is a column of
+-1.2 like any lab value, so neighbours mostly share a patient's outcome, validation patients included, and the GCN
reads the labels through the edges (same-outcome neighbour rate 0.98 against 0.65 on features alone). The masks are
right and training looks ordinary. Symptom: val accuracy 0.983 / loss 0.064 against 0.770 / 0.515 at the same
epoch when the graph is built from the feature columns only."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout34"
N, K = 1000, 10


def cohort_table(seed=34):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, 10, generator=g)
    risk = 0.9 * x[:, 0] + 0.6 * x[:, 1] - 0.5 * x[:, 2] + 0.4 * x[:, 3] * x[:, 4] - 0.4
    readmit = (torch.rand(N, generator=g) < torch.sigmoid(1.5 * risk)).float()
    return torch.cat([x, readmit[:, None]], 1)


def zscore(t):
    return (t - t.mean(0)) / t.std(0)


def knn_adjacency(points, k=K):
    dist = torch.cdist(points, points)
    dist.fill_diagonal_(float("inf"))
    nbrs = dist.topk(k, largest=False).indices
    adj = torch.zeros(N, N)
    adj.scatter_(1, nbrs, 1.0)
    adj = ((adj + adj.T) > 0).float() + torch.eye(N)
    deg = adj.sum(1).rsqrt()
    return deg[:, None] * adj * deg[None, :], nbrs


class PatientGCN(L.LightningModule):
    def __init__(self, d=10, hidden=64, lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.lin1 = nn.Linear(d, hidden)
        self.lin2 = nn.Linear(hidden, 2)
        self.drop = nn.Dropout(0.3)

    def forward(self, x, adj):
        h = self.drop(torch.relu(adj @ self.lin1(x)))
        return adj @ self.lin2(h)

    def training_step(self, batch, batch_idx):
        x, adj, y, mask = batch
        loss = F.cross_entropy(self(x, adj)[mask], y[mask])
        self.log("train_loss", loss, on_epoch=True, on_step=False, batch_size=int(mask.sum()))
        return loss

    def validation_step(self, batch, batch_idx):
        x, adj, y, mask = batch
        logits = self(x, adj)[mask]
        n = int(mask.sum())
        self.log("val_loss", F.cross_entropy(logits, y[mask]), batch_size=n)
        self.log("val_acc", (logits.argmax(1) == y[mask]).float().mean(), batch_size=n)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)


def main():
    L.seed_everything(34)
    cohort = cohort_table()
    features, y = zscore(cohort[:, :-1]), cohort[:, -1].long()
    adj, nbrs = knn_adjacency(zscore(cohort))
    same = (y[nbrs] == y[:, None]).float().mean().item()
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(34))
    train_mask = torch.zeros(N, dtype=torch.bool)
    train_mask[perm[:700]] = True
    val_mask = ~train_mask
    trainer = L.Trainer(max_epochs=150, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(PatientGCN(), DataLoader([(features, adj, y, train_mask)], batch_size=None),
                DataLoader([(features, adj, y, val_mask)], batch_size=None))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f} same_label_nbrs={same:.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: SIGN-style (scalable inception graph network) node classification on the breast-cancer data turned into
a symmetric 10-nearest-neighbour graph. Because propagation has no parameters it is done once, up front:
the StandardScaler is fitted on the training nodes, the kNN graph is built on the scaled features of all nodes
(transductive: the features of every node are available, their labels are not), and each node's input is the
concatenation [X, A_hat X, A_hat^2 X] with A_hat = D^-1/2 (A + I) D^-1/2 applied as a sparse COO matrix. No label
enters the propagated features. After that the nodes are independent rows, so training is an ordinary minibatch
MLP over the training nodes only (BatchNorm, `drop_last=True` so no batch of one), with class-weighted
cross-entropy whose weights come from the training labels' frequencies, and OneCycleLR stepped per batch.
Own metric: val acc 0.965, val balanced acc 0.963 (val loss 0.185).
"""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.neighbors import kneighbors_graph
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout30"


def normalised_adjacency(features, k):
    knn = kneighbors_graph(features, n_neighbors=k, include_self=False).tocoo()
    n = features.shape[0]
    rows = torch.tensor(np.concatenate([knn.row, knn.col, np.arange(n)]))
    cols = torch.tensor(np.concatenate([knn.col, knn.row, np.arange(n)]))
    adj = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.ones(rows.numel()), (n, n)).coalesce()
    r, c = adj.indices()
    deg = torch.zeros(n).index_add_(0, r, torch.ones(r.numel()))
    return torch.sparse_coo_tensor(adj.indices(), (deg[r] * deg[c]).rsqrt(), (n, n))


class SIGNData(L.LightningDataModule):
    def __init__(self, hops=2, k=10, batch_size=32):
        super().__init__()
        self.hops, self.k, self.batch_size = hops, k, batch_size

    def setup(self, stage=None):
        X, y = load_breast_cancer(return_X_y=True)
        idx_tr, idx_va = train_test_split(np.arange(len(y)), test_size=0.3, random_state=30, stratify=y)
        Z = torch.tensor(StandardScaler().fit(X[idx_tr]).transform(X), dtype=torch.float32)
        a_hat = normalised_adjacency(Z.numpy(), self.k)
        feats, h = [Z], Z
        for _ in range(self.hops):
            h = torch.sparse.mm(a_hat, h)
            feats.append(h)
        inputs, labels = torch.cat(feats, 1), torch.tensor(y)
        self.n_features = inputs.size(1)
        self.class_weights = torch.tensor(len(idx_tr) / (2 * np.bincount(y[idx_tr])), dtype=torch.float32)
        self.train_ds = TensorDataset(inputs[idx_tr], labels[idx_tr])
        self.val_ds = TensorDataset(inputs[idx_va], labels[idx_va])

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=256)


class SIGNClassifier(L.LightningModule):
    def __init__(self, n_features, class_weights, hidden=64, max_lr=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("class_weights", class_weights)
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(hidden, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_weights)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        pred = logits.argmax(1)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (pred == y).float().mean())
        self.log("val_bal_acc", torch.stack([(pred[y == c] == c).float().mean() for c in (0, 1)]).mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.max_lr, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(309)
    dm = SIGNData()
    dm.setup()
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SIGNClassifier(dm.n_features, dm.class_weights), datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_bal_acc={m['val_bal_acc'].item():.3f} "
          f"val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

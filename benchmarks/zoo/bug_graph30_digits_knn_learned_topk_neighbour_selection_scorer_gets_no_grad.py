"""Bug: transductive node classification on the scikit-learn digits turned into a kNN graph (15 candidate
neighbours per image, from the pixel features standardised with the training nodes' statistics; 20% of the nodes
are labelled for training, 20% held out for validation). Pixel features are corrupted with heavy noise so that
choosing good neighbours matters. The model learns *which* neighbours to aggregate: a query/key scorer rates every
candidate neighbour, the top 5 are kept with `topk`, and their embeddings are averaged into a GraphSAGE-style
update (root + neighbour linear maps), two such layers.

What is wrong: only the *indices* returned by `topk` are used -- the kept neighbours are averaged with equal
weights, and the scores themselves never enter the forward computation. `topk` indices are not differentiable,
so the query/key scorer parameters of both layers never receive a gradient; they stay at their random
initialisation and the "learned" neighbour selection is a fixed random projection. Training still works because
the root/neighbour maps learn on whatever neighbours are picked, and the accuracy even looks fine, which is
why nobody notices that half of the design is inert. Measured: val acc 0.727 (val loss 1.081) with the bug, the
scorer weights bit-identical to their initialisation; with the kept neighbours weighted by the softmax of their
scores the scorer trains (val acc 0.699, val loss 1.596 -- the learned selection overfits the 20% labelled nodes,
which is the design question the bug hides).
"""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout30"


class DigitsGraph(L.LightningDataModule):
    def setup(self, stage=None):
        X, y = load_digits(return_X_y=True)
        rng = np.random.default_rng(30)
        X = X + rng.normal(0.0, 6.0, X.shape)
        perm = rng.permutation(len(y))
        n_tr = n_va = len(y) // 5
        train_idx, val_idx = perm[:n_tr], perm[n_tr:n_tr + n_va]
        X = StandardScaler().fit(X[train_idx]).transform(X)
        _, nbrs = NearestNeighbors(n_neighbors=16).fit(X).kneighbors(X)
        self.graph = {"x": torch.tensor(X, dtype=torch.float32), "y": torch.tensor(y),
                      "candidates": torch.tensor(nbrs[:, 1:]), "train_idx": torch.tensor(train_idx),
                      "val_idx": torch.tensor(val_idx)}

    def train_dataloader(self):
        return DataLoader([self.graph], batch_size=None)

    def val_dataloader(self):
        return DataLoader([self.graph], batch_size=None)


class TopKSelectConv(nn.Module):
    def __init__(self, d_in, d_out, d_score=16, keep=5):
        super().__init__()
        self.keep = keep
        self.query = nn.Linear(d_in, d_score)
        self.key = nn.Linear(d_in, d_score)
        self.root = nn.Linear(d_in, d_out)
        self.neigh = nn.Linear(d_in, d_out, bias=False)

    def forward(self, h, candidates):
        scores = (self.query(h).unsqueeze(1) * self.key(h)[candidates]).sum(-1)
        top = scores.topk(self.keep, dim=1).indices
        chosen = candidates.gather(1, top)
        agg = h[chosen].mean(1)
        return self.root(h) + self.neigh(agg)


class SelectiveGNN(L.LightningModule):
    def __init__(self, hidden=64, lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.conv1 = TopKSelectConv(64, hidden)
        self.conv2 = TopKSelectConv(hidden, 10)
        self.dropout = nn.Dropout(0.3)

    def forward(self, x, candidates):
        h = self.dropout(F.relu(self.conv1(x, candidates)))
        return self.conv2(h, candidates)

    def training_step(self, batch, batch_idx):
        idx = batch["train_idx"]
        logits = self(batch["x"], batch["candidates"])[idx]
        loss = F.cross_entropy(logits, batch["y"][idx])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        idx = batch["val_idx"]
        logits = self(batch["x"], batch["candidates"])[idx]
        y = batch["y"][idx]
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=5e-4)


def main():
    L.seed_everything(306)
    trainer = L.Trainer(max_epochs=120, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(SelectiveGNN(), datamodule=DigitsGraph())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: link prediction on a synthetic social graph (500 nodes in 5 communities, stochastic-block-model edges,
weakly informative 16-d node features), from a seeded torch.Generator. A two-layer GraphSAGE encoder written by hand
(self and mean-of-neighbour weights, aggregation with `index_add_` over a directed edge list holding both directions
of every undirected edge) produces node embeddings; an MLP on the Hadamard product h_u * h_v scores a candidate
edge, BCE-with-logits on positives and uniformly sampled negatives.

The split is done on undirected edges, so both directions of an edge fall on the same side: 85 % train, 15 %
validation, and validation edges are never in the message-passing graph. Within training, every step re-splits the
training edges into 70 % message edges and 30 % supervision edges (disjoint), so the encoder never sees, as a
message, the edge it is asked to score; negatives are resampled every step in equal number. Validation uses all
training edges for message passing, the held-out positives and a fixed set of negatives drawn once, and reports the
loss and AUROC (torchmetrics). Dropout 0.3 between the layers and AdamW (weight decay 0.05) keep the small encoder
from memorising node identities. Measured: val loss 0.693 -> 0.579 and val AUROC 0.76 after 80 full-batch steps,
with the validation loss flat, not rising, at the end."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import BinaryAUROC

import lightning_sanity

EXPECT = None
SPLIT = "heldout22"


def sbm_graph(g, n=500, communities=5, feat_dim=16, p_in=0.06, p_out=0.004):
    block = torch.randint(0, communities, (n,), generator=g)
    prob = torch.where(block[:, None] == block[None, :], p_in, p_out)
    upper = torch.triu(torch.rand(n, n, generator=g) < prob, diagonal=1)
    edges = torch.nonzero(upper).T
    centres = torch.randn(communities, feat_dim, generator=g)
    x = 0.5 * centres[block] + torch.randn(n, feat_dim, generator=g)
    perm = torch.randperm(edges.shape[1], generator=g)
    n_val = int(0.15 * edges.shape[1])
    val_pos, train_pos = edges[:, perm[:n_val]], edges[:, perm[n_val:]]
    val_neg = torch.randint(0, n, (2, n_val), generator=g)
    return {"x": x, "train_pos": train_pos, "val_pos": val_pos, "val_neg": val_neg}


def both_directions(edges):
    return torch.cat([edges, edges.flip(0)], 1)


class SAGELayer(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.self_lin = nn.Linear(d_in, d_out)
        self.neigh_lin = nn.Linear(d_in, d_out, bias=False)

    def forward(self, h, edge_index):
        src, dst = edge_index
        agg = torch.zeros_like(h).index_add_(0, dst, h[src])
        deg = torch.zeros(h.shape[0], dtype=h.dtype).index_add_(0, dst, torch.ones(dst.numel(), dtype=h.dtype))
        return self.self_lin(h) + self.neigh_lin(agg / deg.clamp(min=1)[:, None])


class LinkPredictor(L.LightningModule):
    def __init__(self, feat_dim=16, hidden=32, lr=5e-3, message_frac=0.7):
        super().__init__()
        self.save_hyperparameters()
        self.conv1 = SAGELayer(feat_dim, hidden)
        self.conv2 = SAGELayer(hidden, hidden)
        self.decoder = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.val_auroc = BinaryAUROC()

    def encode(self, x, message_edges):
        edge_index = both_directions(message_edges)
        return self.conv2(F.dropout(F.relu(self.conv1(x, edge_index)), 0.3, self.training), edge_index)

    def score(self, h, pairs):
        return self.decoder(h[pairs[0]] * h[pairs[1]]).squeeze(1)

    def _scores_and_labels(self, h, pos, neg):
        logits = torch.cat([self.score(h, pos), self.score(h, neg)])
        labels = torch.cat([torch.ones(pos.shape[1]), torch.zeros(neg.shape[1])])
        return logits, labels

    def training_step(self, graph, batch_idx):
        edges = graph["train_pos"]
        perm = torch.randperm(edges.shape[1])
        n_msg = int(self.hparams.message_frac * edges.shape[1])
        message, supervision = edges[:, perm[:n_msg]], edges[:, perm[n_msg:]]
        neg = torch.randint(0, graph["x"].shape[0], supervision.shape)
        logits, labels = self._scores_and_labels(self.encode(graph["x"], message), supervision, neg)
        loss = F.binary_cross_entropy_with_logits(logits, labels)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, graph, batch_idx):
        h = self.encode(graph["x"], graph["train_pos"])
        logits, labels = self._scores_and_labels(h, graph["val_pos"], graph["val_neg"])
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, labels))
        self.val_auroc(logits, labels.long())
        self.log("val_auroc", self.val_auroc)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=5e-2)


def main():
    L.seed_everything(2209)
    graph = sbm_graph(torch.Generator().manual_seed(10))
    loader = DataLoader([graph], batch_size=None)
    model = LinkPredictor()
    trainer = L.Trainer(max_epochs=80, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, check_val_every_n_epoch=10, log_every_n_steps=1,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, loader, loader)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_auroc={float(m['val_auroc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug (target leakage through the message-passing graph): the plain-torch GAE link predictor of
healthy_graph_autoencoder_link_prediction_train_edges_only, but the normalised adjacency is built once from the whole
edge list, "the graph", right after loading it, and the edges are split into train/validation afterwards for the
loss only. The encoder therefore propagates over every validation edge: the two endpoints of a held-out edge
average each other's features, so their embeddings' inner product is high because the edge is there. The validation
AUC measures how well the model reads the answer from its input, not how well it predicts a missing link.
Symptom: val AUC 0.94 vs 0.88 with the validation edges removed from the encoder's graph (the fixed script)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage", "split-overlap"}
SPLIT = "heldout9"
N_NODES = 300


def stochastic_block_graph(g, n=N_NODES, k=6, p_in=0.12, p_out=0.002):
    community = torch.randint(0, k, (n,), generator=g)
    same = community[:, None] == community[None, :]
    prob = torch.where(same, torch.tensor(p_in), torch.tensor(p_out))
    upper = torch.triu(torch.rand(n, n, generator=g) < prob, diagonal=1)
    edges = upper.nonzero()
    features = F.one_hot(community, k).float() * 1.5 + torch.randn(n, k, generator=g)
    features = torch.cat([features, torch.randn(n, 10, generator=g)], 1)
    return edges, features


def normalized_adjacency(edges, n=N_NODES):
    a = torch.zeros(n, n)
    a[edges[:, 0], edges[:, 1]] = 1.0
    a[edges[:, 1], edges[:, 0]] = 1.0
    a = a + torch.eye(n)
    d = a.sum(1).rsqrt()
    return d[:, None] * a * d[None, :]


class GCNEncoder(nn.Module):
    def __init__(self, in_dim, hidden=32, out=16):
        super().__init__()
        self.conv1 = nn.Linear(in_dim, hidden)
        self.conv2 = nn.Linear(hidden, out)

    def forward(self, x, adj):
        h = F.relu(adj @ self.conv1(x))
        return adj @ self.conv2(h)


class LitGAE(L.LightningModule):
    def __init__(self, features, adj):
        super().__init__()
        self.encoder = GCNEncoder(features.shape[1])
        self.register_buffer("features", features)
        self.register_buffer("adj", adj)

    def score(self, pairs):
        z = self.encoder(self.features, self.adj)
        return (z[pairs[:, 0]] * z[pairs[:, 1]]).sum(-1)

    def training_step(self, batch, batch_idx):
        (pos,) = batch
        neg = torch.randint(0, N_NODES, pos.shape, device=pos.device)
        pairs = torch.cat([pos, neg])
        labels = torch.cat([torch.ones(len(pos)), torch.zeros(len(neg))]).to(pos.device)
        loss = F.binary_cross_entropy_with_logits(self.score(pairs), labels)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        pairs, labels = batch
        s = self.score(pairs)
        self.log("val_loss", F.binary_cross_entropy_with_logits(s, labels))
        # AUC: probability that a random positive outranks a random negative
        pos, neg = s[labels == 1], s[labels == 0]
        self.log("val_auc", (pos[:, None] > neg[None, :]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-2)


def main():
    L.seed_everything(5)
    g = torch.Generator().manual_seed(5)
    edges, features = stochastic_block_graph(g)
    adj = normalized_adjacency(edges)
    perm = torch.randperm(len(edges), generator=g)
    n_val = int(0.15 * len(edges))
    val_pos, train_pos = edges[perm[:n_val]], edges[perm[n_val:]]
    existing = adj > 0
    cand = torch.randint(0, N_NODES, (4 * n_val, 2), generator=g)
    val_neg = cand[~existing[cand[:, 0], cand[:, 1]]][:n_val]
    val_pairs = torch.cat([val_pos, val_neg])
    val_labels = torch.cat([torch.ones(len(val_pos)), torch.zeros(len(val_neg))])
    trainer = L.Trainer(max_epochs=60, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitGAE(features, adj), DataLoader(TensorDataset(train_pos), batch_size=128, shuffle=True),
                DataLoader(TensorDataset(val_pairs, val_labels), batch_size=len(val_pairs)))
    print(f"val_auc={trainer.callback_metrics['val_auc'].item():.3f} (val edges {n_val}, train edges {len(train_pos)})")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

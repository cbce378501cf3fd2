"""Bug: link prediction on a product co-purchase graph (600 products, undirected edges stored PyG-style as both
directions (u, v) and (v, u)). Model: a learnable embedding per product plus its 16 noisy catalogue features, one
GraphSAGE-mean layer over the training edges, dot-product decoder, BCE with one uniformly sampled negative per
positive, AUC on validation. The validation edges are taken with a random permutation of the *directed* edge list,
so for nearly every validation edge (u, v) its reverse (v, u) stays a training positive (and a message-passing edge),
and the symmetric dot-product decoder scores the two identically: validation measures memorisation, not link
prediction. The val AUC used for early stopping and model choice is far above what the model does on pairs it has
never seen.
Symptom: val AUC 0.86 but 0.70 on a clean held-out set of product pairs, vs val 0.72 / held-out 0.71 when
the split is drawn over undirected pairs (u < v) and both directions of a validation pair are removed."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout15"
N, D_FEAT = 600, 16


def make_graph(g):
    """Latent tastes decide who is bought together; catalogue features are a noisy view of the tastes."""
    z = torch.randn(N, 8, generator=g)
    feats = z @ torch.randn(8, D_FEAT, generator=g) / 3 + torch.randn(N, D_FEAT, generator=g)
    logits = 1.5 * (z @ z.T) / 8 ** 0.5 - 5.0
    upper = torch.triu(torch.rand(N, N, generator=g) < torch.sigmoid(logits), diagonal=1)
    u, v = upper.nonzero(as_tuple=True)
    return feats, torch.stack([u, v])  # undirected pairs, u < v


def both_directions(pairs):
    return torch.cat([pairs, pairs.flip(0)], 1)


def auc(pos, neg):
    return (pos[:, None] > neg[None, :]).float().mean().item()


class SageLinkPredictor(L.LightningModule):
    def __init__(self, feats, message_edges, d=32, lr=1e-2):
        super().__init__()
        self.save_hyperparameters(ignore=["feats", "message_edges"])
        self.register_buffer("feats", feats)
        self.register_buffer("message_edges", message_edges)
        self.emb = nn.Embedding(N, d)
        nn.init.normal_(self.emb.weight, std=0.1)
        self.lin_in = nn.Linear(D_FEAT + d, d)
        self.lin_self, self.lin_neigh = nn.Linear(d, d), nn.Linear(d, d)

    def encode(self):
        h = F.relu(self.lin_in(torch.cat([self.feats, self.emb.weight], 1)))
        src, dst = self.message_edges
        agg = torch.zeros_like(h).index_add_(0, dst, h[src])
        deg = torch.zeros(N, device=h.device).index_add_(0, dst, torch.ones_like(dst, dtype=h.dtype)).clamp(min=1)
        return self.lin_self(h) + self.lin_neigh(agg / deg[:, None])

    def score(self, h, pairs):
        return (h[pairs[0]] * h[pairs[1]]).sum(1)

    def training_step(self, batch, batch_idx):
        pos = batch[0].T
        neg = torch.randint(0, N, pos.shape, device=self.device)
        h = self.encode()
        s_pos, s_neg = self.score(h, pos), self.score(h, neg)
        loss = F.binary_cross_entropy_with_logits(torch.cat([s_pos, s_neg]),
                                                  torch.cat([torch.ones_like(s_pos), torch.zeros_like(s_neg)]))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        pos, neg = batch[0].T, batch[1].T
        h = self.encode()
        self.log("val_auc", auc(self.score(h, pos), self.score(h, neg)), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-5)


def main():
    L.seed_everything(19)
    g = torch.Generator().manual_seed(19)
    feats, pairs = make_graph(g)
    perm = torch.randperm(pairs.shape[1], generator=g)
    n_test = pairs.shape[1] // 10
    test_pairs, rest = pairs[:, perm[:n_test]], pairs[:, perm[n_test:]]  # clean held-out pairs, kept aside

    edges = both_directions(rest)  # the edge list as the graph library stores it
    eperm = torch.randperm(edges.shape[1], generator=g)
    n_val = edges.shape[1] // 10
    val_edges, train_edges = edges[:, eperm[:n_val]], edges[:, eperm[n_val:]]

    val_neg = torch.randint(0, N, val_edges.shape, generator=g)
    model = SageLinkPredictor(feats, train_edges)
    trainer = L.Trainer(max_epochs=60, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="copurchase_linkpred"),
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(train_edges.T), batch_size=4096, shuffle=True),
                DataLoader(TensorDataset(val_edges.T, val_neg.T), batch_size=len(val_neg.T)))
    model.eval()
    with torch.no_grad():
        h = model.encode()
        val_auc = auc(model.score(h, val_edges), model.score(h, val_neg))
        test_neg = torch.randint(0, N, test_pairs.shape, generator=g)
        test_auc = auc(model.score(h, test_pairs), model.score(h, test_neg))
    print(f"SYMPTOM val_auc={val_auc:.3f} heldout_pairs_auc={test_auc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

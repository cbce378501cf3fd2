"""Bug: a RankNet-style learning-to-rank model on synthetic web-search logs. Each query has 24 candidate documents
with LETOR-like features - BM25 score, document length in words, PageRank, lifetime click count, age in days, title
cosine similarity, number of inlinks - and graded relevance 0-4 from a hidden rule on the usual (log-scaled) feature
transforms. An MLP scores each document; the loss is the pairwise logistic loss over all pairs of a query whose
grades differ; validation is NDCG@10 per query.

The features go into the network exactly as exported: click counts up to ~1e5, lengths in the thousands, PageRank
around 1e-4, cosine in [0, 1]. The columns that matter most are tiny or heavy-tailed next to the raw-count columns,
so the first layer is dominated by clicks and length and the model ranks far worse. Nothing fails; NDCG is just
mediocre and users blame the model.
Symptom: val NDCG@10 0.67 vs 0.94 with log on the count/length/PageRank columns and standardization fitted on the
training queries."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"input-scale"}
SPLIT = "heldout16"
N_DOCS = 24


def make_queries(n, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (n, N_DOCS)
    bm25 = 25 * torch.rand(shape, generator=g)
    length = torch.exp(5 + 2.0 * torch.rand(shape, generator=g))
    pagerank = torch.exp(-12 + 4 * torch.rand(shape, generator=g))
    clicks = torch.floor(torch.exp(11 * torch.rand(shape, generator=g)))
    age = 3000 * torch.rand(shape, generator=g)
    cosine = torch.rand(shape, generator=g)
    inlinks = torch.floor(torch.exp(7 * torch.rand(shape, generator=g)))
    score = (0.12 * bm25 + 0.35 * torch.log1p(clicks) + 0.4 * (torch.log(pagerank) + 10) + 3.0 * cosine
             - 0.4 * torch.log(length) + 0.3 * torch.log1p(inlinks) - 0.0004 * age)
    score = score + 0.5 * torch.randn(shape, generator=g)
    ranks = score.argsort(1).argsort(1).float() / (N_DOCS - 1)  # within-query percentile
    grades = torch.bucketize(ranks, torch.tensor([0.5, 0.75, 0.88, 0.96]))
    feats = torch.stack([bm25, length, pagerank, clicks, age, cosine, inlinks], -1)
    return feats, grades.float()


def ndcg_at(scores, grades, k=10):
    order = scores.argsort(1, descending=True)[:, :k]
    disc = 1 / torch.log2(torch.arange(2, k + 2).float())
    dcg = ((2 ** grades.gather(1, order) - 1) * disc).sum(1)
    ideal = ((2 ** grades.sort(1, descending=True).values[:, :k] - 1) * disc).sum(1)
    return (dcg / ideal.clamp_min(1e-9)).mean()


class RankNet(L.LightningModule):
    def __init__(self, n_features=7, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.scorer = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                                    nn.Linear(64, 1))

    def forward(self, feats):
        return self.scorer(feats).squeeze(-1)  # (queries, docs)

    def training_step(self, batch, batch_idx):
        feats, grades = batch
        s = self(feats)
        diff = s[:, :, None] - s[:, None, :]
        better = (grades[:, :, None] > grades[:, None, :]).float()
        pairs = (grades[:, :, None] != grades[:, None, :]).float()
        loss = (F.binary_cross_entropy_with_logits(diff, better, reduction="none") * pairs).sum() / pairs.sum()
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        feats, grades = batch
        self.log("val_ndcg10", ndcg_at(self(feats), grades))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(9)
    tr = TensorDataset(*make_queries(1500, seed=1))
    va = TensorDataset(*make_queries(300, seed=2))
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RankNet(), DataLoader(tr, batch_size=32, shuffle=True), DataLoader(va, batch_size=300))
    print(f"SYMPTOM val_ndcg10={float(trainer.callback_metrics['val_ndcg10']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: learning to rank for a product search log. Each query has 24 candidate products with 12 features
(text-match scores, price percentile within the query, rating, popularity, ...) and graded relevance 0-3 from a
nonlinear rule plus noise. An MLP scores each (query, product) row; batches hold whole queries, and the loss is a
pairwise hinge (`F.margin_ranking_loss`, target +1) over every pair inside a query whose grades differ, weighted by the
grade gap and averaged over the valid pairs. Many pairs reach the margin and contribute nothing, as they should.
Adam with OneCycleLR stepped per batch; validation reports NDCG@10 against ranking by the text-match score alone.
Final: val NDCG@10 0.949 vs 0.776 for text match alone; 13 % of the pairs still inside the margin at the end."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"
DOCS, FEATS = 24, 12


def simulate_queries(n_queries, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_queries, DOCS, FEATS, generator=g)
    score = (1.2 * x[..., 0] + 0.8 * torch.relu(x[..., 1]) - 0.5 * x[..., 2] ** 2 + 0.6 * x[..., 3] * x[..., 4]
             + 0.4 * x[..., 5] + 0.5 * torch.randn(n_queries, DOCS, generator=g))
    # grade by within-query quantile: ~50 % irrelevant, then 25 / 15 / 10 %
    q = score.argsort(1).argsort(1).float() / (DOCS - 1)
    rel = (q > 0.5).long() + (q > 0.75).long() + (q > 0.9).long()
    return x, rel


def ndcg_at_k(scores, rel, k=10):
    gains = 2.0 ** rel.float() - 1
    discounts = 1 / torch.log2(torch.arange(2, k + 2).float())
    top = scores.argsort(1, descending=True)[:, :k]
    dcg = (gains.gather(1, top) * discounts).sum(1)
    ideal = (gains.sort(1, descending=True).values[:, :k] * discounts).sum(1)
    return (dcg / ideal.clamp(min=1e-9)).mean()


class PairwiseRanker(L.LightningModule):
    def __init__(self, max_lr=3e-3, margin=1.0):
        super().__init__()
        self.save_hyperparameters()
        self.scorer = nn.Sequential(nn.Linear(FEATS, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):                                           # (Q, D, F) -> (Q, D)
        return self.scorer(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, rel = batch
        s = self(x)
        better = rel.unsqueeze(2) > rel.unsqueeze(1)                # pair (i, j): i more relevant than j
        qi, i, j = better.nonzero(as_tuple=True)
        gap = (rel[qi, i] - rel[qi, j]).float()
        per_pair = F.margin_ranking_loss(s[qi, i], s[qi, j], torch.ones_like(gap), margin=self.hparams.margin,
                                         reduction="none")
        loss = (gap * per_pair).sum() / gap.sum()
        self.log("train_pair_loss", loss, on_epoch=True, on_step=False)
        self.log("active_pair_share", (per_pair > 0).float().mean(), on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, rel = batch
        self.log("val_ndcg10", ndcg_at_k(self(x), rel), prog_bar=True)
        self.log("val_ndcg10_text_match", ndcg_at_k(x[..., 0], rel))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.max_lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(1010)
    x, rel = simulate_queries(1500, seed=21)
    mean, std = x[:1200].reshape(-1, FEATS).mean(0), x[:1200].reshape(-1, FEATS).std(0)
    x = (x - mean) / std
    train = TensorDataset(x[:1200], rel[:1200])
    val = TensorDataset(x[1200:], rel[1200:])
    model = PairwiseRanker()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=16, shuffle=True), DataLoader(val, batch_size=300))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_ndcg10={float(m['val_ndcg10']):.3f} text_match_ndcg10={float(m['val_ndcg10_text_match']):.3f} "
          f"active_pairs={float(m['active_pair_share']):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

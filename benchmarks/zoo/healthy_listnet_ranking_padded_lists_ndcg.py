"""Healthy: learning to rank with a ListNet loss (as in allRank / TF-Ranking's softmax loss) on synthetic search
results: each query has 8 to 20 candidate documents (16 features each: query-document match signals and document
quality, a seeded torch.Generator), graded relevance 0..3 from a noisy nonlinear rule of the features. Lists are
padded to 20 with a boolean `mask`; dict batches `features` (B, 20, 16), `relevance` (B, 20), `mask` (B, 20). A
pointwise MLP scorer (LayerNorm, GELU, dropout) scores every document; the loss is the cross-entropy between the
softmax of the relevance labels and the softmax of the scores taken over the documents of each list (dim=1), padded
positions filled with -1e9 on both sides. Adam, OneCycleLR per step. Own metric: val NDCG@5 0.932 (random
scores give 0.328)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout8"
MAX_DOCS, N_FEATURES = 20, 16


def make_queries(n, g):
    lengths = torch.randint(8, MAX_DOCS + 1, (n,), generator=g)
    mask = torch.arange(MAX_DOCS)[None] < lengths[:, None]
    x = torch.randn(n, MAX_DOCS, N_FEATURES, generator=g)
    signal = 1.2 * x[..., 0] + torch.tanh(2 * x[..., 1]) + 0.6 * x[..., 2] * x[..., 3] + 0.4 * x[..., 4].clamp(min=0)
    signal = signal + 0.5 * torch.randn(n, MAX_DOCS, generator=g)
    relevance = torch.bucketize(signal, torch.tensor([0.5, 1.5, 2.5])).float()
    x[~mask] = 0.0
    relevance[~mask] = 0.0
    return x, relevance, mask


class RankingLists(Dataset):
    def __init__(self, x, relevance, mask):
        self.x, self.relevance, self.mask = x, relevance, mask

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"features": self.x[i], "relevance": self.relevance[i], "mask": self.mask[i]}


def ndcg_at_k(scores, relevance, mask, k=5):
    scores = scores.masked_fill(~mask, float("-inf"))
    discounts = 1.0 / torch.log2(torch.arange(k, dtype=torch.float32) + 2.0)
    gains = 2.0 ** relevance - 1.0
    dcg = (gains.gather(1, scores.topk(k, dim=1).indices) * discounts).sum(1)
    ideal = (gains.masked_fill(~mask, 0.0).topk(k, dim=1).values * discounts).sum(1)
    keep = ideal > 0
    return (dcg[keep] / ideal[keep]).mean()


class ListNetRanker(L.LightningModule):
    def __init__(self, total_steps, hidden=64):
        super().__init__()
        self.scorer = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.LayerNorm(hidden), nn.GELU(), nn.Dropout(0.1),
                                    nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.total_steps = total_steps

    def forward(self, features):
        return self.scorer(features).squeeze(-1)

    @staticmethod
    def listnet_loss(scores, relevance, mask):
        target = F.softmax(relevance.masked_fill(~mask, -1e9), dim=1)
        log_p = F.log_softmax(scores.masked_fill(~mask, -1e9), dim=1)
        return -(target * log_p).sum(1).mean()

    def training_step(self, batch, batch_idx):
        loss = self.listnet_loss(self(batch["features"]), batch["relevance"], batch["mask"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        scores = self(batch["features"])
        self.log("val_loss", self.listnet_loss(scores, batch["relevance"], batch["mask"]))
        self.log("val_ndcg5", ndcg_at_k(scores, batch["relevance"], batch["mask"]))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(77)
    g = torch.Generator().manual_seed(77)
    train = DataLoader(RankingLists(*make_queries(1200, g)), batch_size=32, shuffle=True)
    val_lists = make_queries(300, g)
    val = DataLoader(RankingLists(*val_lists), batch_size=300)
    epochs = 12
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ListNetRanker(epochs * len(train)), train, val)
    random_ndcg = ndcg_at_k(torch.randn(300, MAX_DOCS, generator=g), val_lists[1], val_lists[2])
    print(f"val_ndcg5={trainer.callback_metrics['val_ndcg5'].item():.3f} random={random_ndcg.item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

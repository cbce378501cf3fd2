"""Healthy: CLIP-style text-to-item retrieval. A query tower (token embeddings, masked mean, MLP) and an item tower
(MLP on a 24-d item feature vector) are trained with the symmetric InfoNCE loss over in-batch negatives, on
L2-normalised embeddings with temperature 0.07 (`logits = q @ d.T / 0.07`). Synthetic catalogue: each item has 3-5
keywords from a 120-word vocabulary, its features are the sum of fixed per-word vectors plus noise, and a query is
4-8 tokens mixing the item's keywords with filler words. Validation on new items. AdamW with CosineAnnealingLR per
step. Reaches val recall@1 0.374 among 250 candidates (chance 0.004), val loss 2.85 (ln 250 = 5.52)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout3"
VOCAB, FEATURES, QUERY_LEN, PAD = 120, 24, 8, 0


def catalogue(n, seed):
    word_vectors = torch.randn(VOCAB, FEATURES, generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(seed)
    queries = torch.full((n, QUERY_LEN), PAD, dtype=torch.long)
    items = torch.zeros(n, FEATURES)
    for k in range(n):
        keywords = torch.randint(1, VOCAB, (int(torch.randint(3, 6, (1,), generator=g)),), generator=g)
        items[k] = word_vectors[keywords].sum(0) + 0.3 * torch.randn(FEATURES, generator=g)
        length = int(torch.randint(4, QUERY_LEN + 1, (1,), generator=g))
        pick = keywords[torch.randint(0, len(keywords), (length,), generator=g)]
        filler = torch.randint(1, VOCAB, (length,), generator=g)
        queries[k, :length] = torch.where(torch.rand(length, generator=g) < 0.7, pick, filler)
    return TensorDataset(queries, items / items.std())


class TwoTower(L.LightningModule):
    def __init__(self, dim=64, temperature=0.07, lr=2e-3, total_steps=600):
        super().__init__()
        self.save_hyperparameters()
        self.word = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.query_mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.item_mlp = nn.Sequential(nn.Linear(FEATURES, 128), nn.GELU(), nn.Linear(128, dim))

    def forward(self, queries, items):
        mask = (queries != PAD).unsqueeze(-1).float()
        q = self.query_mlp((self.word(queries) * mask).sum(1) / mask.sum(1))
        return F.normalize(q, dim=-1), F.normalize(self.item_mlp(items), dim=-1)

    def logits(self, batch):
        q, d = self(*batch)
        return q @ d.T / self.hparams.temperature

    def infonce(self, logits):
        target = torch.arange(len(logits), device=logits.device)
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    def training_step(self, batch, batch_idx):
        loss = self.infonce(self.logits(batch))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self.logits(batch)
        recall = (logits.argmax(1) == torch.arange(len(logits))).float().mean()
        self.log_dict({"val_loss": self.infonce(logits), "val_recall_at_1": recall})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(1234)
    train = DataLoader(catalogue(3000, 1), batch_size=64, shuffle=True, drop_last=True)
    val = DataLoader(catalogue(500, 2), batch_size=250)
    epochs = 8
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TwoTower(total_steps=epochs * len(train)), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_recall_at_1={float(m['val_recall_at_1']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

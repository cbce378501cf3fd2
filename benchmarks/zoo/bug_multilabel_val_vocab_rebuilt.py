"""Bug: multi-label tagging where each split builds its own tag vocabulary in order of first appearance, so the
multi-hot columns of validation name other tags than the same columns in training. Synthetic "articles" (24
standard-normal features, a seeded torch.Generator; six tags, each present when its own linear score exceeds a
tag-specific threshold), MLP, BCEWithLogits, AdamW, linear warm-up then cosine decay per step (`LinearLR` +
`CosineAnnealingLR` in a `SequentialLR`). Val micro-F1 0.66 vs 0.95 with one vocabulary
(healthy_multilabel_tags_warmup_cosine)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout2"

TAGS = ["politics", "sport", "science", "economy", "culture", "health"]


def make_articles(n, proj, thresholds, gen):
    x = torch.randn(n, 24, generator=gen)
    present = (x @ proj) > thresholds
    return x, [[TAGS[k] for k in range(len(TAGS)) if row[k]] for row in present.tolist()]


def build_vocab(tag_lists):
    return {tag: i for i, tag in enumerate(dict.fromkeys(t for tags in tag_lists for t in tags))}


def encode(tag_lists, vocab):
    y = torch.zeros(len(tag_lists), len(vocab))
    for i, tags in enumerate(tag_lists):
        y[i, [vocab[t] for t in tags]] = 1.0
    return y


class Tagger(L.LightningModule):
    def __init__(self, n_tags=6, lr=3e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(24, 128), nn.GELU(), nn.Dropout(0.1), nn.Linear(128, n_tags))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        pred = (logits > 0).float()
        tp, fp, fn = (pred * y).sum(), (pred * (1 - y)).sum(), ((1 - pred) * y).sum()
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_f1", 2 * tp / (2 * tp + fp + fn))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.05, total_iters=self.hparams.warmup)
        decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - self.hparams.warmup)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, decay], milestones=[self.hparams.warmup])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(5)
    gen = torch.Generator().manual_seed(5)
    proj = torch.randn(24, len(TAGS), generator=gen) / 24 ** 0.5
    thresholds = torch.tensor([0.0, 0.3, 0.6, 1.0, 1.3, 0.2])
    x_tr, tags_tr = make_articles(2000, proj, thresholds, gen)
    x_va, tags_va = make_articles(500, proj, thresholds, gen)
    vocab = build_vocab(tags_tr)
    val_vocab = build_vocab(tags_va)  # BUG: a second vocabulary, numbered in the validation split's own order
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Tagger(n_tags=len(vocab)), DataLoader(TensorDataset(x_tr, encode(tags_tr, vocab)), batch_size=32,
                                                      shuffle=True),
                DataLoader(TensorDataset(x_va, encode(tags_va, val_vocab)), batch_size=250))
    print(f"val_f1={trainer.callback_metrics['val_f1'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: DeepFM click-through-rate model on synthetic ad impressions (8 categorical fields - user segment, ad,
advertiser, site, device, hour, ... - with vocabularies from 24 to 2000 ids, 3.6 % clicks). First-order weights and
field embeddings are `nn.Embedding(sparse=True)` trained with SparseAdam, the deep tower and the bias with AdamW:
two optimizers stepped together under manual optimisation. The FM second-order term uses the
(sum^2 - sum of squares) / 2 identity. The output bias starts at the log-odds of the click rate, so the first loss
already matches the label prior. Final val AUC 0.66 (3.6 % clicks; the generating logits themselves reach 0.85 -
most ads have only ~30 impressions, which caps what any model learns)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout15"
VOCABS = [24, 2000, 300, 500, 6, 24, 50, 12]


def make_impressions(n, g, tables):
    cols = torch.stack([torch.randint(0, v, (n,), generator=g) for v in VOCABS], 1)
    w1, emb = tables
    logit = -4.2 + sum(w1[f][cols[:, f]] for f in range(len(VOCABS)))
    logit = logit + 1.2 * (emb[0][cols[:, 0]] * emb[1][cols[:, 1]]).sum(1)  # segment x ad affinity
    logit = logit + 0.8 * (emb[3][cols[:, 3]] * emb[5][cols[:, 5]]).sum(1)  # site x hour
    clicks = (torch.rand(n, generator=g) < torch.sigmoid(logit)).float()
    return cols, clicks, logit


def auc(scores, labels):
    order = scores.argsort()
    ranks = torch.empty_like(order, dtype=torch.float)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float)
    n_pos = labels.sum()
    n_neg = len(labels) - n_pos
    return ((ranks[labels > 0].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


class DeepFM(L.LightningModule):
    def __init__(self, prior, k=8, lr_sparse=3e-2, lr_dense=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.register_buffer("offsets", torch.tensor([0] + VOCABS[:-1]).cumsum(0))
        total = sum(VOCABS)
        self.first = nn.Embedding(total, 1, sparse=True)
        self.emb = nn.Embedding(total, k, sparse=True)
        nn.init.zeros_(self.first.weight)
        nn.init.normal_(self.emb.weight, std=0.01)
        self.deep = nn.Sequential(nn.Linear(len(VOCABS) * k, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 32),
                                  nn.ReLU(), nn.Linear(32, 1))
        self.bias = nn.Parameter(torch.tensor(math.log(prior / (1 - prior))))

    def forward(self, cols):
        idx = cols + self.offsets
        e = self.emb(idx)  # (B, F, k)
        fm = 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(1)
        return self.bias + self.first(idx).sum((1, 2)) + fm + self.deep(e.flatten(1))[:, 0]

    def training_step(self, batch, batch_idx):
        opt_sparse, opt_dense = self.optimizers()
        cols, y = batch
        loss = F.binary_cross_entropy_with_logits(self(cols), y)
        opt_sparse.zero_grad()
        opt_dense.zero_grad()
        self.manual_backward(loss)
        opt_sparse.step()
        opt_dense.step()
        self.log("train_loss", loss)

    def validation_step(self, batch, batch_idx):
        cols, y = batch
        logits = self(cols)
        self.log_dict({"val_loss": F.binary_cross_entropy_with_logits(logits, y), "val_auc": auc(logits, y)},
                      prog_bar=True)

    def configure_optimizers(self):
        sparse = [self.first.weight, self.emb.weight]
        dense = list(self.deep.parameters()) + [self.bias]
        return (torch.optim.SparseAdam(sparse, lr=self.hparams.lr_sparse),
                torch.optim.AdamW(dense, lr=self.hparams.lr_dense, weight_decay=1e-4))


def main():
    L.seed_everything(77)
    g = torch.Generator().manual_seed(77)
    tables = ([0.5 * torch.randn(v, generator=g) for v in VOCABS], [torch.randn(v, 4, generator=g) / 2 for v in VOCABS])
    x_tr, y_tr, _ = make_impressions(60000, g, tables)
    x_va, y_va, true_logit = make_impressions(15000, g, tables)
    model = DeepFM(prior=y_tr.mean().item())
    trainer = L.Trainer(max_epochs=6, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        logger=TensorBoardLogger("lightning_logs", name="deepfm_ctr"), enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=512, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=15000))
    print(f"SYMPTOM click_rate={y_tr.mean().item():.3f} val_auc={trainer.callback_metrics['val_auc'].item():.3f} "
          f"oracle_auc={auc(true_logit, y_va):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

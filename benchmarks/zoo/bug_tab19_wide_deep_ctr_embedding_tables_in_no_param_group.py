"""Bug: Wide & Deep click-through-rate model on ad impressions (categorical fields ad / advertiser / user segment /
site / device / hour, each with an entity embedding, plus a wide part of per-id scalar weights and the dense
features). The author follows the usual "no weight decay on biases, norms and embeddings" advice and builds two AdamW
parameter groups by name: `decay` = weights of the deep tower, `no_decay` = names ending in "bias" or containing
"norm". The embedding tables (`emb.ad.weight`, `wide_emb.site.weight`, ...) and the wide linear weight match neither
filter, so they are in no optimizer at all: they keep their random initialisation and the deep tower has to decode
ids from random codes. Nothing errors and the training loss still falls.
Symptom: val logloss 0.596 / AUC 0.627 vs 0.532 / 0.677 with the embedding tables and wide weight put into the
no_decay group (a constant click-rate prediction scores logloss 0.557)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout19"
FIELDS = {"ad": 400, "advertiser": 60, "segment": 30, "site": 80, "device": 4, "hour": 24}


def simulate_impressions(n, seed):
    g = torch.Generator().manual_seed(seed)
    cats = {f: torch.randint(0, c, (n,), generator=g) for f, c in FIELDS.items()}
    cats["advertiser"] = cats["ad"] % FIELDS["advertiser"]
    ad_quality = torch.randn(FIELDS["ad"], generator=g) * 0.8
    site_effect = torch.randn(FIELDS["site"], generator=g) * 0.5
    seg_vec = torch.randn(FIELDS["segment"], 3, generator=g)
    ad_vec = torch.randn(FIELDS["ad"], 3, generator=g)
    hour_effect = 0.4 * torch.sin(torch.arange(24) / 24 * 6.283)
    position = torch.randint(1, 6, (n,), generator=g).float()
    bid = torch.rand(n, generator=g)
    logit = (-1.2 + ad_quality[cats["ad"]] + site_effect[cats["site"]]
             + 0.7 * (seg_vec[cats["segment"]] * ad_vec[cats["ad"]]).sum(1) + hour_effect[cats["hour"]]
             - 0.3 * (position - 1) + 0.3 * (cats["device"] == 0).float())
    clicks = (torch.rand(n, generator=g) < torch.sigmoid(logit)).float()
    ids = torch.stack([cats[f] for f in FIELDS], 1)
    dense = torch.stack([(position - 3) / 1.4, (bid - 0.5) / 0.29], 1)
    return ids, dense, clicks


class WideDeep(L.LightningModule):
    def __init__(self, dim=12, lr=3e-3, weight_decay=1e-2):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.ModuleDict({f: nn.Embedding(c, dim) for f, c in FIELDS.items()})
        self.wide_emb = nn.ModuleDict({f: nn.Embedding(c, 1) for f, c in FIELDS.items()})
        self.wide = nn.Linear(2, 1)
        self.deep = nn.Sequential(nn.Linear(dim * len(FIELDS) + 2, 128), nn.LayerNorm(128), nn.ReLU(),
                                  nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, ids, dense):
        e = [self.emb[f](ids[:, k]) for k, f in enumerate(FIELDS)]
        deep = self.deep(torch.cat(e + [dense], 1)).squeeze(-1)
        wide = self.wide(dense).squeeze(-1) + sum(self.wide_emb[f](ids[:, k]).squeeze(-1)
                                                  for k, f in enumerate(FIELDS))
        return deep + wide

    def training_step(self, batch, batch_idx):
        ids, dense, y = batch
        loss = F.binary_cross_entropy_with_logits(self(ids, dense), y)
        self.log("train_logloss", loss, on_epoch=True, on_step=False)
        return loss

    def on_validation_epoch_start(self):
        self._scores, self._labels = [], []

    def validation_step(self, batch, batch_idx):
        ids, dense, y = batch
        logits = self(ids, dense)
        self.log("val_logloss", F.binary_cross_entropy_with_logits(logits, y), prog_bar=True)
        self._scores.append(logits.detach())
        self._labels.append(y)

    def on_validation_epoch_end(self):
        auc = roc_auc_score(torch.cat(self._labels).numpy(), torch.cat(self._scores).numpy())
        self.log("val_auc", float(auc), prog_bar=True)

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if n.startswith("deep.") and n.endswith("weight")
                 and "norm" not in n and p.ndim == 2]
        no_decay = [p for n, p in self.named_parameters() if n.endswith("bias") or "norm" in n]
        return torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                  {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr)


def main():
    L.seed_everything(404)
    ids, dense, y = simulate_impressions(40000, seed=19)
    n_tr = 32000
    train_dl = DataLoader(TensorDataset(ids[:n_tr], dense[:n_tr], y[:n_tr]), batch_size=512, shuffle=True)
    val_dl = DataLoader(TensorDataset(ids[n_tr:], dense[n_tr:], y[n_tr:]), batch_size=4096)
    model = WideDeep()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_logloss={float(m['val_logloss']):.3f} val_auc={float(m['val_auc']):.3f} "
          f"click_rate={float(y.mean()):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: an asymmetric dual encoder for passage retrieval: a light query tower (embedding bag + MLP, queries are short
keyword strings that use abbreviations) and a heavier passage tower (embedding + GRU + attention pooling, passages
spell entities out in full). Both share one tokenizer; in-batch-negative InfoNCE, temperature 0.05, dict batches.
The module grew from a symmetric (shared-tower) prototype whose `encode(ids)` helper served queries and passages
alike; after the towers were split, `encode` gained `tower="query"` as default and `training_step` was updated to
pass `tower="passage"`, but `validation_step` (and the recall@1 evaluation written on top of it) still calls
`self.encode(batch["passage_ids"])`: validation passages are embedded by the query tower, whose embedding rows for
passage-side tokens were never trained. Training loss falls, validation sits above the ln(batch) baseline.
Symptom: val InfoNCE 7.60 (ln 64 = 4.16) and val recall@1 over 500 passages 0.004, vs val loss 1.07 and recall@1
0.43 when validation uses the passage tower."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout11"
N_ENT, N_FILL, N_QWORDS = 200, 60, 12
PAD = 0
# one tokenizer: [PAD] | filler words | question words | entity abbreviations | entity full names
FILL0, QW0, ABBR0, FULL0 = 1, 1 + N_FILL, 1 + N_FILL + N_QWORDS, 1 + N_FILL + N_QWORDS + N_ENT
VOCAB = FULL0 + N_ENT


def make_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    ents = torch.stack([torch.randperm(N_ENT, generator=g)[:3] for _ in range(n)])
    passages = FILL0 + torch.randint(0, N_FILL, (n, 16), generator=g)
    slots = torch.stack([torch.randperm(16, generator=g)[:3] for _ in range(n)])
    passages.scatter_(1, slots, FULL0 + ents)
    queries = torch.cat([QW0 + torch.randint(0, N_QWORDS, (n, 2), generator=g), ABBR0 + ents[:, :2],
                         FILL0 + torch.randint(0, N_FILL, (n, 2), generator=g)], 1)
    queries = queries[:, torch.randperm(6, generator=g)]
    return queries, passages


class Pairs(Dataset):
    def __init__(self, q, p):
        self.q, self.p = q, p

    def __len__(self):
        return len(self.q)

    def __getitem__(self, i):
        return {"query_ids": self.q[i], "passage_ids": self.p[i]}


class QueryTower(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.mlp = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))

    def forward(self, ids):
        mask = (ids != PAD).unsqueeze(-1).float()
        return self.mlp((self.embed(ids) * mask).sum(1) / mask.sum(1).clamp_min(1))


class PassageTower(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.gru = nn.GRU(d, d, batch_first=True, bidirectional=True)
        self.score = nn.Linear(2 * d, 1)
        self.out = nn.Linear(2 * d, d)

    def forward(self, ids):
        h, _ = self.gru(self.embed(ids))
        w = self.score(h).squeeze(-1).masked_fill(ids == PAD, float("-inf")).softmax(-1)
        return self.out((w.unsqueeze(-1) * h).sum(1))


class DualEncoder(L.LightningModule):
    def __init__(self, d=64, temperature=0.05, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.query_tower = QueryTower(d)
        self.passage_tower = PassageTower(d)

    def encode(self, ids, tower="query"):
        enc = self.query_tower if tower == "query" else self.passage_tower
        return F.normalize(enc(ids), dim=-1)

    def info_nce(self, q, p):
        logits = q @ p.T / self.hparams.temperature
        return F.cross_entropy(logits, torch.arange(len(q), device=q.device))

    def training_step(self, batch, batch_idx):
        loss = self.info_nce(self.encode(batch["query_ids"]), self.encode(batch["passage_ids"], tower="passage"))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.info_nce(self.encode(batch["query_ids"]), self.encode(batch["passage_ids"]))
        self.log("val_loss", loss, prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


@torch.no_grad()
def recall_at_1(model, q, p):
    model.eval()
    qe, pe = model.encode(q), model.encode(p)
    return (qe @ pe.T).argmax(1).eq(torch.arange(len(q))).float().mean().item()


def main():
    L.seed_everything(41)
    tq, tp = make_pairs(4000, 1)
    vq, vp = make_pairs(512, 2)
    train = DataLoader(Pairs(tq, tp), batch_size=64, shuffle=True, drop_last=True)
    val = DataLoader(Pairs(vq, vp), batch_size=64)
    model = DualEncoder()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="dual_encoder"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(model, train, val)
    print(f"SYMPTOM val_loss {trainer.callback_metrics['val_loss'].item():.3f} (ln64={math.log(64):.2f}) "
          f"val recall@1 {recall_at_1(model, vq[:500], vp[:500]):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

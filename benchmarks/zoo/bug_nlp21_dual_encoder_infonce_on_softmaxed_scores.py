"""Bug: a bi-encoder (shared token-embedding tower with masked mean pooling, projection, L2-normalised) for
passage retrieval on synthetic data: each passage is 12 random tokens out of 500, its query is 5 of those tokens in
random order plus 1 random distractor token, padded to a common length with an `attention_mask`. Trained with
in-batch-negative InfoNCE (temperature 0.05) on dict batches `query_input_ids`, `query_attention_mask`,
`passage_input_ids`, `passage_attention_mask`; validation reports the same loss and recall@1 against all 500
validation passages. AdamW, linear warm-up then cosine.

The scoring head was refactored to return "retrieval probabilities", `scores = (q @ p.T / tau).softmax(-1)`, which
the recall metric is happy with - and the loss kept calling `F.cross_entropy(scores, targets)`, i.e. cross-entropy on
probabilities instead of logits. The "logits" fed to the loss live in [0, 1], so the loss can never go below
-log(e / (e + 63)) = 3.19 for a batch of 64 and the temperature no longer sharpens anything; it still falls (from
ln 64 = 4.16) and, because the ranking gradient keeps its sign, recall still rises. Symptom: val loss stuck at 3.28
(near that floor) vs 0.155 when the loss is computed on `q @ p.T / tau`; val recall@1 0.81 vs 0.84."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"loss-input"}
SPLIT = "heldout21"
PAD, VOCAB = 0, 501


def make_pairs(n, g):
    pairs = []
    for _ in range(n):
        passage = (torch.randperm(VOCAB - 1, generator=g)[:12] + 1).tolist()
        picked = torch.randperm(12, generator=g)[:5].tolist()
        query = [passage[i] for i in picked] + torch.randint(1, VOCAB, (1,), generator=g).tolist()
        pairs.append((query, passage))
    return pairs


def pad(seqs):
    ids = torch.full((len(seqs), max(map(len, seqs))), PAD)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
    return ids, (ids != PAD).long()


def collate(batch):
    q_ids, q_mask = pad([q for q, _ in batch])
    p_ids, p_mask = pad([p for _, p in batch])
    return {"query_input_ids": q_ids, "query_attention_mask": q_mask,
            "passage_input_ids": p_ids, "passage_attention_mask": p_mask}


class BiEncoder(L.LightningModule):
    def __init__(self, d=64, tau=0.05, lr=3e-3, warmup=20):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(VOCAB, d, padding_idx=PAD)
        self.proj = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))

    def encode(self, input_ids, attention_mask):
        m = attention_mask.unsqueeze(-1).float()
        pooled = (self.emb(input_ids) * m).sum(1) / m.sum(1)
        return F.normalize(self.proj(pooled), dim=-1)

    def forward(self, batch):
        q = self.encode(batch["query_input_ids"], batch["query_attention_mask"])
        p = self.encode(batch["passage_input_ids"], batch["passage_attention_mask"])
        return (q @ p.T / self.hparams.tau).softmax(-1)

    def _loss(self, batch):
        scores = self(batch)
        return F.cross_entropy(scores, torch.arange(scores.shape[0], device=scores.device))

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm))))
        return [opt], [{"scheduler": sched, "interval": "step"}]


@torch.no_grad()
def recall_at_1(model, pairs):
    scores = model(collate(pairs))
    return float((scores.argmax(-1) == torch.arange(len(pairs))).float().mean())


def main():
    L.seed_everything(2107)
    g = torch.Generator().manual_seed(27)
    train, val = make_pairs(6000, g), make_pairs(500, g)
    model = BiEncoder()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate, drop_last=True),
                DataLoader(val, batch_size=64, collate_fn=collate, drop_last=True))
    model.eval()
    r1 = recall_at_1(model, val)
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} val_recall@1={r1:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a sentence-transformers-style dual encoder for passage retrieval (shared encoder with masked mean pooling,
L2-normalised embeddings, symmetric InfoNCE with in-batch negatives, learnable logit scale) whose collate shuffles
the passages "so that the positive is not always on the diagonal" and returns the permutation itself as
`labels`. The passage of query i is now at column `perm.argsort()[i]`, not `perm[i]`: the targets point at random
passages (except where the permutation happens to be its own inverse), so the contrastive loss has nothing to
learn. Val loss 5.55 (= ln 256, chance) and val recall@1 0.004 among 256 passages vs 0.83 / 0.79 with
`labels = perm.argsort()` (or no shuffle). Dict batches, AdamW, warm-up + cosine per step."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"loss-trend"}
SPLIT = "heldout4"
PAD, VOCAB, ENTITIES = 0, 600, 500  # entity words are ids 1..500, filler 501..599


class QueryPassagePairs(Dataset):
    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            ent = 1 + torch.randperm(ENTITIES, generator=g)[:3]
            q = torch.cat([ent, torch.randint(ENTITIES + 1, VOCAB, (int(torch.randint(2, 6, (1,), generator=g)),),
                                              generator=g)])
            p = torch.cat([ent[:2], torch.randint(ENTITIES + 1, VOCAB, (int(torch.randint(6, 14, (1,), generator=g)),),
                                                  generator=g)])
            self.items.append((q[torch.randperm(len(q), generator=g)], p[torch.randperm(len(p), generator=g)]))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    q = nn.utils.rnn.pad_sequence([a for a, _ in items], batch_first=True, padding_value=PAD)
    p = nn.utils.rnn.pad_sequence([b for _, b in items], batch_first=True, padding_value=PAD)
    # shuffle the passages so that the positive is not always on the diagonal
    perm = torch.randperm(len(items))
    p = p[perm]
    return {"query_input_ids": q, "query_attention_mask": (q != PAD).long(),
            "passage_input_ids": p, "passage_attention_mask": (p != PAD).long(), "labels": perm}


class SentenceEncoder(nn.Module):
    def __init__(self, dim=64, out=64):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, dim, padding_idx=PAD)
        self.layer = nn.TransformerEncoderLayer(dim, 4, 2 * dim, dropout=0.1, batch_first=True, norm_first=True)
        self.proj = nn.Linear(dim, out)

    def forward(self, input_ids, attention_mask):
        h = self.layer(self.embed(input_ids), src_key_padding_mask=attention_mask == 0)
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1)
        return F.normalize(self.proj(pooled), dim=-1)


class LitRetriever(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = SentenceEncoder()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, batch):
        q = self.encoder(batch["query_input_ids"], batch["query_attention_mask"])
        p = self.encoder(batch["passage_input_ids"], batch["passage_attention_mask"])
        return self.logit_scale.exp().clamp(max=100) * q @ p.T

    def _loss(self, logits, labels):
        # query i's passage is at column labels[i]
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels.argsort())) / 2

    def training_step(self, batch, batch_idx):
        loss = self._loss(self(batch), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch)
        recall = (logits.argmax(-1) == batch["labels"]).float().mean()
        self.log_dict({"val_loss": self._loss(logits, batch["labels"]), "val_recall@1": recall})

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        total, w = self.trainer.estimated_stepping_batches, self.hparams.warmup
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / w if s < w else 0.5 * (1 + math.cos(math.pi * (s - w) / max(1, total - w))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(4109)
    train = DataLoader(QueryPassagePairs(3000, 0), batch_size=64, shuffle=True, collate_fn=collate, drop_last=True)
    val = DataLoader(QueryPassagePairs(512, 1), batch_size=256, collate_fn=collate)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitRetriever(), train, val)
    m = trainer.callback_metrics
    print(f"val_recall@1={m['val_recall@1']:.3f} val_loss={m['val_loss']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: FAQ retrieval with a two-tower text encoder (shared token embeddings, separate query and answer towers:
masked mean pool, MLP, L2-normalised). Queries are paraphrases of an answer's key terms (synonyms, dropped terms,
chatty filler). Symmetric in-batch InfoNCE with a learnable temperature (CLIP-style log scale, clamped at 100),
manual optimization (`manual_backward`, `clip_gradients`, warm-up + cosine scheduler stepped by hand), dict batches.
The validation answers are FAQ entries never seen in training. Final val recall@1 0.83 over 200 unseen answers
(chance 0.005)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout10"
N_TERMS, N_FILLER = 300, 40
# ids: 0 pad, 1..300 terms, 301..600 their synonyms, 601..640 filler
VOCAB = 1 + 2 * N_TERMS + N_FILLER


def faq(n_answers, pairs_per_answer, seed):
    g = torch.Generator().manual_seed(seed)
    items = []
    for _ in range(n_answers):
        terms = 1 + torch.randperm(N_TERMS, generator=g)[:6]
        answer = torch.cat([terms, 1 + 2 * N_TERMS + torch.randint(0, N_FILLER, (8,), generator=g)])
        answer = answer[torch.randperm(len(answer), generator=g)]
        for _ in range(pairs_per_answer):
            keep = terms[torch.randperm(6, generator=g)[: int(torch.randint(3, 6, (1,), generator=g))]]
            syn = torch.rand(len(keep), generator=g) < 0.5
            q = torch.where(syn, keep + N_TERMS, keep)
            chat = int(torch.randint(0, 5, (1,), generator=g))
            q = torch.cat([q, 1 + 2 * N_TERMS + torch.randint(0, N_FILLER, (chat,), generator=g)])
            items.append((q[torch.randperm(len(q), generator=g)], answer))
    return items


def collate(items):
    q = pad_sequence([a for a, _ in items], batch_first=True)
    d = pad_sequence([b for _, b in items], batch_first=True)
    return {"query_ids": q, "query_mask": (q != 0).float(), "doc_ids": d, "doc_mask": (d != 0).float()}


class Tower(nn.Module):
    def __init__(self, emb, dim=64, out=64):
        super().__init__()
        self.emb = emb
        self.mlp = nn.Sequential(nn.Linear(dim, 128), nn.GELU(), nn.Linear(128, out))

    def forward(self, ids, mask):
        pooled = (self.emb(ids) * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return F.normalize(self.mlp(pooled), dim=-1)


class DualEncoder(L.LightningModule):
    def __init__(self, lr=5e-3, warmup=50):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.token_emb = nn.Embedding(VOCAB, 64, padding_idx=0)  # shared by both towers
        self.query_tower, self.doc_tower = Tower(self.token_emb), Tower(self.token_emb)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def similarities(self, batch):
        q = self.query_tower(batch["query_ids"], batch["query_mask"])
        d = self.doc_tower(batch["doc_ids"], batch["doc_mask"])
        return self.logit_scale.clamp(max=math.log(100)).exp() * q @ d.T

    def training_step(self, batch, batch_idx):
        opt, sched = self.optimizers(), self.lr_schedulers()
        sims = self.similarities(batch)
        target = torch.arange(len(sims), device=sims.device)
        loss = 0.5 * (F.cross_entropy(sims, target) + F.cross_entropy(sims.T, target))
        opt.zero_grad()
        self.manual_backward(loss)
        self.clip_gradients(opt, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
        opt.step()
        sched.step()
        self.log_dict({"train_loss": loss, "temperature": 1 / self.logit_scale.exp()})

    def validation_step(self, batch, batch_idx):
        # one query per unseen answer, all answers in one batch: recall@1 over the whole validation FAQ
        sims = self.similarities(batch)
        target = torch.arange(len(sims), device=sims.device)
        self.log_dict({"val_loss": F.cross_entropy(sims, target),
                       "val_recall_at_1": (sims.argmax(1) == target).float().mean()})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup
        def warmup_cosine(s):
            if s < warm:
                return (s + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / (total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine)
        return [opt], [sched]


if __name__ == "__main__":
    L.seed_everything(314)
    model = DualEncoder()
    trainer = L.Trainer(
        max_epochs=30,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="faq_dual_encoder"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(faq(1500, 4, 1), batch_size=128, shuffle=True, collate_fn=collate),
                DataLoader(faq(200, 1, 2), batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_recall_at_1={m['val_recall_at_1'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

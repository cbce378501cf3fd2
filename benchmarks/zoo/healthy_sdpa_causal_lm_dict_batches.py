"""Healthy: a GPT-style causal LM written by hand on `F.scaled_dot_product_attention`, HuggingFace conventions:
dict batches with `input_ids`, `attention_mask` and `labels` (= input_ids), the loss computed inside the model
on `logits[:, :-1]` against `labels[:, 1:]`, an output object with `.loss` and `.logits`. The attention mask is
a boolean lower triangle (`torch.tril`: True = may attend, SDPA's convention). Data: a noisy Markov chain over
64 tokens (the next token is `perm[x]` with probability 0.9, else uniform), so the best achievable next-token
loss is about 0.73 nats (accuracy 0.90). AdamW, linear warm-up then linear decay (LambdaLR per step).
Reaches val loss ~0.80 and val next-token accuracy ~0.89."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout2"
VOCAB, LENGTH = 64, 24


class MarkovChain(Dataset):
    def __init__(self, n, seed, noise=0.1):
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(VOCAB, generator=torch.Generator().manual_seed(7))
        seqs = torch.empty(n, LENGTH, dtype=torch.long)
        seqs[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
        for t in range(1, LENGTH):
            rand = torch.randint(0, VOCAB, (n,), generator=g)
            keep = torch.rand(n, generator=g) > noise
            seqs[:, t] = torch.where(keep, perm[seqs[:, t - 1]], rand)
        self.seqs = seqs

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        ids = self.seqs[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


@dataclass
class LMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, allowed):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, dim=64, heads=4, layers=2):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, dim)
        self.pos = nn.Embedding(LENGTH, dim)
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(dim)
        self.lm_head = nn.Linear(dim, VOCAB, bias=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        t = input_ids.shape[1]
        x = self.tok(input_ids) + self.pos(torch.arange(t, device=input_ids.device))
        # True = may attend (SDPA): position i sees keys 0..i
        allowed = torch.tril(torch.ones(t, t, dtype=torch.bool, device=x.device))
        if attention_mask is not None:
            allowed = allowed & attention_mask.bool()[:, None, None, :]
        for block in self.blocks:
            x = block(x, allowed)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return LMOutput(loss, logits)


class LitGPT(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=20, total=300):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPT()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        acc = (out.logits[:, :-1].argmax(-1) == batch["labels"][:, 1:]).float().mean()
        self.log("val_loss", out.loss)
        self.log("val_acc", acc)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        w, total = self.hparams.warmup, self.hparams.total
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: (s + 1) / w if s < w else max(0.05, (total - s) / (total - w)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2101)
    train = DataLoader(MarkovChain(2048, 0), batch_size=32, shuffle=True)
    val = DataLoader(MarkovChain(256, 1), batch_size=128)
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    model = LitGPT(total=4 * len(train))
    trainer.fit(model, train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

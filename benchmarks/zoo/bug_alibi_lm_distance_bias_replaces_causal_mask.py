"""Bug: a small ALiBi decoder LM (HuggingFace-style: dict batches `input_ids`/`labels`, the loss computed inside the
model, an output object with `.loss` and `.logits`) on synthetic "event log" token streams from a sparse Markov chain.
ALiBi replaces position embeddings with a per-head linear penalty on the query-key distance. The author wrote the
bias as `-slope * |i - j|` and passed it as the float `attn_mask` of `scaled_dot_product_attention`, reasoning that
the bias "already handles positions" - and dropped the separate causal mask (-inf above the diagonal) that ALiBi
needs on top. Every position attends to the token it has to predict (distance 1 is barely penalised). Teacher-forced
loss collapses below the entropy of the chain, but the model cannot predict when the future is really unseen.
Symptom: teacher-forced val loss 0.12 (below the chain's entropy 0.80) but next-token accuracy on truncated
prefixes 0.33, vs val loss 0.82 and prefix accuracy 0.71 with the causal mask added to the ALiBi bias."""

import math
from types import SimpleNamespace

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout11"
VOCAB, SEQ = 24, 40


def make_chain(seed):
    """Sparse transition matrix: every event type has three likely successors (0.7 / 0.2 / 0.1)."""
    g = torch.Generator().manual_seed(seed)
    trans = torch.zeros(VOCAB, VOCAB)
    for s in range(VOCAB):
        nxt = torch.randperm(VOCAB, generator=g)[:3]
        trans[s, nxt] = torch.tensor([0.7, 0.2, 0.1])
    return trans


def sample_streams(trans, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.empty(n, SEQ, dtype=torch.long)
    x[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
    for t in range(1, SEQ):
        x[:, t] = torch.multinomial(trans[x[:, t - 1]], 1, generator=g).squeeze(1)
    return x


class Streams(Dataset):
    def __init__(self, x):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        ids = self.x[i]
        return {"input_ids": ids, "labels": ids.clone()}


def alibi_slopes(n_heads):
    return torch.tensor([2 ** (-8 * (h + 1) / n_heads) for h in range(n_heads)])


class AlibiBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, bias):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class AlibiLM(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d)
        self.blocks = nn.ModuleList(AlibiBlock(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        self.register_buffer("slopes", alibi_slopes(heads), persistent=False)

    def alibi_bias(self, t):
        pos = torch.arange(t, device=self.slopes.device)
        dist = (pos[:, None] - pos[None, :]).abs().float()        # |i - j|
        return -self.slopes[:, None, None] * dist                 # (heads, t, t), no causal mask

    def forward(self, input_ids, labels=None):
        x = self.embed(input_ids)
        bias = self.alibi_bias(input_ids.shape[1])
        for blk in self.blocks:
            x = blk(x, bias)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
        return SimpleNamespace(loss=loss, logits=logits)


class LitLM(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = AlibiLM()

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out.loss, prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / 50) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def prefix_accuracy(model, x):
    """Predict token t+1 from x[:t+1] alone (the future really cut off), averaged over cut points."""
    model.eval()
    hits, n = 0, 0
    for t in range(4, SEQ - 1, 5):
        logits = model(x[:, : t + 1]).logits[:, -1]
        hits += (logits.argmax(-1) == x[:, t + 1]).sum().item()
        n += len(x)
    return hits / n


def main():
    L.seed_everything(11)
    trans = make_chain(5)
    ent = -(trans * trans.clamp_min(1e-12).log()).sum(1).mean().item()
    train_x, val_x = sample_streams(trans, 2400, 1), sample_streams(trans, 400, 2)
    train = DataLoader(Streams(train_x), batch_size=64, shuffle=True)
    val = DataLoader(Streams(val_x), batch_size=200)
    lit = LitLM()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        logger=TensorBoardLogger("lightning_logs", name="alibi_lm"),
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False)
    trainer.fit(lit, train, val)
    val_loss = trainer.callback_metrics["val_loss"].item()
    print(f"SYMPTOM chain entropy {ent:.3f} teacher-forced val_loss {val_loss:.3f} "
          f"prefix next-token acc {prefix_accuracy(lit.model, val_x):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

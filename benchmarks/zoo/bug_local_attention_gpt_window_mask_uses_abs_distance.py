"""Bug: a tiny decoder-only LM (GPT-style, rotary positions, pre-LN blocks, dict batches with the loss computed
inside the model) trained on token streams from a sparse 24-state Markov chain. To keep attention cheap the model
uses sliding-window ("local") attention with a window of 8 tokens. The window mask is written as
`(pos[:, None] - pos[None, :]).abs() < window`, the usual way to draw a band, and the causal part was meant to come
"for free" from the window - but `abs()` makes the band symmetric, so position t also attends to the next 7
tokens, including the token it has to predict. Training and validation losses fall far below the chain's entropy
rate; the model is useless for generation, where the future is not there.
Symptom: teacher-forced val loss 0.000 (the chain's entropy rate is 1.04) while the loss when each position only
sees its prefix (what generation gets) is 6.71; with the causal band `0 <= i - j < window` val loss 1.06 and
prefix-only loss 1.04."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout12"

VOCAB = 24
SEQ_LEN = 48
WINDOW = 8


def make_chain(g):
    """Sparse transition matrix: every state has 3 successors with random weights."""
    trans = torch.zeros(VOCAB, VOCAB)
    for s in range(VOCAB):
        nxt = torch.randperm(VOCAB, generator=g)[:3]
        trans[s, nxt] = torch.rand(3, generator=g) + 0.2
    return trans / trans.sum(1, keepdim=True)


def entropy_rate(trans):
    # stationary distribution by power iteration
    pi = torch.full((VOCAB,), 1.0 / VOCAB)
    for _ in range(500):
        pi = pi @ trans
    h = -(trans * trans.clamp_min(1e-12).log()).sum(1)
    return float((pi * h).sum())


def sample_sequences(trans, n, g):
    seqs = torch.empty(n, SEQ_LEN, dtype=torch.long)
    seqs[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
    for t in range(1, SEQ_LEN):
        seqs[:, t] = torch.multinomial(trans[seqs[:, t - 1]], 1, generator=g).squeeze(1)
    return seqs


class LMDataset(Dataset):
    def __init__(self, seqs):
        self.seqs = seqs

    def __len__(self):
        return len(self.seqs)

    def __getitem__(self, i):
        ids = self.seqs[i]
        return {"input_ids": ids, "labels": ids.clone()}


def rotary(x, base=10000.0):
    # x: (B, H, T, D)
    d = x.shape[-1]
    t = torch.arange(x.shape[-2], device=x.device, dtype=torch.float32)
    inv = 1.0 / base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    ang = t[:, None] * inv[None, :]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
    return out.flatten(-2)


class LocalAttention(nn.Module):
    def __init__(self, d, heads, window):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k = rotary(q), rotary(k)
        pos = torch.arange(t, device=x.device)
        band = (pos[:, None] - pos[None, :]).abs() < self.window   # allowed (query i, key j)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=band)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, heads, window):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = LocalAttention(d, heads, window)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class LocalGPT(nn.Module):
    def __init__(self, d=64, heads=4, layers=2, window=WINDOW):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, d)
        self.blocks = nn.ModuleList(Block(d, heads, window) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)

    def forward(self, input_ids, labels=None):
        x = self.tok(input_ids)
        for blk in self.blocks:
            x = blk(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1))
        return {"logits": logits, "loss": loss}


class LitLM(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=50):
        super().__init__()
        self.save_hyperparameters()
        self.model = LocalGPT()

    def forward(self, input_ids, labels=None):
        return self.model(input_ids, labels)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out["loss"])
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch)["loss"], prog_bar=True)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01, betas=(0.9, 0.95))
        total = self.trainer.estimated_stepping_batches
        warm = self.hparams.warmup

        def lr_lambda(step):
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (total - step) / max(1, total - warm))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def prefix_only_loss(model, seqs):
    """Loss at position t computed from ids[:t+1] alone, as in generation."""
    model.eval()
    losses = []
    for t in range(1, SEQ_LEN - 1, 5):
        logits = model(seqs[:, : t + 1])["logits"][:, -1]
        losses.append(F.cross_entropy(logits, seqs[:, t + 1]))
    return float(torch.stack(losses).mean())


def main():
    L.seed_everything(1207)
    g = torch.Generator().manual_seed(1207)
    trans = make_chain(g)
    train = sample_sequences(trans, 2400, g)
    val = sample_sequences(trans, 400, g)
    train_dl = DataLoader(LMDataset(train), batch_size=32, shuffle=True)
    val_dl = DataLoader(LMDataset(val), batch_size=100)

    lit = LitLM()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks(),
                        gradient_clip_val=1.0)
    trainer.fit(lit, train_dl, val_dl)

    lit.eval()
    with torch.no_grad():
        val_loss = float(lit(input_ids=val, labels=val)["loss"])
    print(f"SYMPTOM entropy_rate={entropy_rate(trans):.3f}")
    print(f"SYMPTOM val_loss_teacher_forced={val_loss:.3f}")
    print(f"SYMPTOM val_loss_prefix_only={prefix_only_loss(lit.model, val):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

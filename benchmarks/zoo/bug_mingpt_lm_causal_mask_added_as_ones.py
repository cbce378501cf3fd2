"""Bug: a minGPT-style character LM (separate key/query/value projections, `CausalSelfAttention`) whose causal mask
is built as `torch.tril(torch.ones(T, T))` and then ADDED to the attention scores (`att = att + self.mask`), as if
it were an additive -inf mask. Allowed positions get +1, future positions get +0: every position still attends to
the tokens after it, so the model reads the next token instead of predicting it. Data: chains
x[t+1] = (x[t] + step) mod 24 where 25% of positions are random noise tokens (honest loss floor about 1.35 nats).
AdamW, OneCycleLR per step, batch size 64. Measured: val loss 1.14, below the honest floor (too good to be true),
vs 1.38 with `att.masked_fill(self.mask[:T, :T] == 0, float("-inf"))`; next-token accuracy on the chain positions
when decoding left to right (no future visible) 0.52 vs 0.93 fixed."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout7"
VOCAB, BLOCK = 32, 24


def noisy_chains(n, seed, length=BLOCK):
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, 24, (n, 1), generator=g)
    step = torch.randint(1, 4, (n, 1), generator=g)
    x = (start + step * torch.arange(length)) % 24
    noise = torch.rand(n, length, generator=g) < 0.25
    return torch.where(noise, torch.randint(24, 32, (n, length), generator=g), x), ~noise


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.key, self.query, self.value = (nn.Linear(n_embd, n_embd) for _ in range(3))
        self.proj = nn.Linear(n_embd, n_embd)
        self.attn_drop, self.resid_drop = nn.Dropout(0.1), nn.Dropout(0.1)
        self.n_head = n_head
        self.register_buffer("mask", torch.tril(torch.ones(BLOCK, BLOCK)))

    def forward(self, x):
        B, T, C = x.size()
        k = self.key(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = self.query(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = self.value(x).view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att + self.mask[:T, :T]
        att = self.attn_drop(F.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, n_embd, n_head):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd),
                                 nn.Dropout(0.1))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, n_embd=64, n_head=4, n_layer=2):
        super().__init__()
        self.tok_emb = nn.Embedding(VOCAB, n_embd)
        self.pos_emb = nn.Parameter(torch.zeros(1, BLOCK, n_embd))
        self.blocks = nn.Sequential(*[Block(n_embd, n_head) for _ in range(n_layer)])
        self.ln_f = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, VOCAB, bias=False)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            m.weight.data.normal_(mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                m.bias.data.zero_()

    def forward(self, idx):
        x = self.tok_emb(idx) + self.pos_emb[:, : idx.size(1)]
        return self.head(self.ln_f(self.blocks(x)))


class LitCharGPT(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = GPT()

    def forward(self, idx):
        return self.model(idx)

    def _loss(self, batch):
        x, _ = batch
        logits = self(x[:, :-1])
        return F.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1))

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


@torch.no_grad()
def left_to_right_accuracy(model, x, clean):
    """Predict token t+1 from the prefix x[:t+1] only, scored where the target is a chain (non-noise) token."""
    model.eval()
    hits, total = 0, 0
    for t in range(4, BLOCK - 1):
        pred = model(x[:, : t + 1])[:, -1].argmax(-1)
        ok = clean[:, t + 1]
        hits += int((pred == x[:, t + 1])[ok].sum())
        total += int(ok.sum())
    return hits / total


def main():
    L.seed_everything(7002)
    xtr, mtr = noisy_chains(2048, 0)
    xva, mva = noisy_chains(256, 1)
    train = DataLoader(TensorDataset(xtr, mtr), batch_size=64, shuffle=True)
    val = DataLoader(TensorDataset(xva, mva), batch_size=128)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    lit = LitCharGPT()
    trainer.fit(lit, train, val)
    print(f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"val_left_to_right_acc={left_to_right_accuracy(lit.model, xva, mva):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

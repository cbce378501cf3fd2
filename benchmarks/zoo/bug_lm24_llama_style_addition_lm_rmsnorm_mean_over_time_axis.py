"""Bug: a llama-style decoder-only LM (RMSNorm, SwiGLU MLP, causal SDPA, weight-tied head) trained on addition
strings `a+b=c` with 3-digit operands, written least-significant digit first so that the answer is computable
left to right. Loss on every next token (pad ignored), AdamW, warm-up + cosine per step.

The hand-rolled RMSNorm normalises with `x.pow(2).mean(1, keepdim=True)`: the class was lifted from an MLP code base
where activations were (batch, features), and in the LM they are (batch, time, features), so dim 1 is the *time*
axis. Every position is divided by the root-mean-square of that channel over the whole sequence, including the
positions after it; the future leaks into every prediction through the norm statistics (e.g. how long the answer is,
how large its digits are). Training and teacher-forced validation look fine, but the model cannot be used
autoregressively. Symptom (fixed version in brackets): teacher-forced val loss 1.265 [1.646], suspiciously better
than the honest model; the logits at the first answer position change by up to 9.6 [0.0] when the tokens after it
are replaced by padding, as they are during generation."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout24"
VOCAB = {c: i for i, c in enumerate("_0123456789+=$")}
SEQ = 16


def addition_strings(n, g):
    a, b = torch.randint(0, 1000, (n,), generator=g), torch.randint(0, 1000, (n,), generator=g)
    rows = torch.zeros(n, SEQ, dtype=torch.long)
    for i in range(n):
        s = f"{str(int(a[i]))[::-1]}+{str(int(b[i]))[::-1]}={str(int(a[i] + b[i]))[::-1]}$"
        rows[i, :len(s)] = torch.tensor([VOCAB[c] for c in s])
    return rows


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return self.weight * x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + self.eps)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.n1, self.n2 = RMSNorm(d), RMSNorm(d)
        self.qkv, self.o = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.gate, self.up = nn.Linear(d, 2 * d, bias=False), nn.Linear(d, 2 * d, bias=False)
        self.down = nn.Linear(2 * d, d, bias=False)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.n1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.o(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d))
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class AdditionLM(L.LightningModule):
    def __init__(self, d=64, heads=4, layers=2, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(len(VOCAB), d)
        self.pos = nn.Parameter(torch.randn(SEQ, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.norm = RMSNorm(d)
        nn.init.normal_(self.tok.weight, std=0.02)

    def forward(self, ids):
        x = self.tok(ids) + self.pos[: ids.shape[1]]
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x) @ self.tok.weight.T

    def _loss(self, seq):
        ids, labels = seq[:, :-1], seq[:, 1:].masked_fill(seq[:, 1:] == 0, -100)
        return F.cross_entropy(self(ids).flatten(0, 1), labels.flatten(), ignore_index=-100)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch[0]))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, 30
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2402)
    g = torch.Generator().manual_seed(7)
    data = addition_strings(3400, g)
    train, val = data[:3000], data[3000:]
    model = AdditionLM()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=400))
    model.eval()
    with torch.no_grad():
        ids = val[:200, :-1]
        first_ans = (ids == VOCAB["="]).float().argmax(1)
        cut = torch.where(torch.arange(ids.shape[1])[None] > first_ans[:, None], torch.zeros_like(ids), ids)
        rows = torch.arange(len(ids))
        drift = (model(ids)[rows, first_ans] - model(cut)[rows, first_ans]).abs().max()
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} prefix_logit_drift={float(drift):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

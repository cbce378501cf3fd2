"""Healthy: supervised fine-tuning of a tiny decoder-only LM (grouped-query attention: 4 query heads sharing 2 key/value
heads, rotary position embeddings, pre-LN, tied input/output embeddings) on a templated "reverse this string"
instruction: `BOS a b c d SEP d c b a EOS`. Batches are HF-style dicts (`input_ids`, `attention_mask`, `labels`) built by
a right-padding collate; `labels` keep only the answer tokens (prompt and padding are -100) and the model shifts them
internally like `AutoModelForCausalLM` (`logits[:, :-1]` against `labels[:, 1:]`). The loss is label-smoothed
cross-entropy (0.05) plus a small z-loss on log Z. Validation reports teacher-forced loss and the exact-match rate of
greedy decoding with a KV cache (prefill on the prompt, then one token at a time with the cache's length as the rotary
offset).

Why it is correct: the prompt is masked out of the loss but the answer (including EOS) is not; labels are shifted
exactly once; padding is on the right so positions 0..t-1 are the real tokens and `is_causal=True` needs no extra
mask (padded positions come after every real token and carry -100); GQA repeats each kv head for consecutive query
heads with `repeat_interleave`; incremental decoding rotates the new token with its true position; strings are
deduplicated before the split so no validation prompt is in training. Measured: val loss 0.36 (ln 12 = 2.48 at init,
label smoothing keeps a floor), greedy exact match 0.98 after 6 epochs."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout32"
PAD, BOS, EOS, SEP = 0, 1, 2, 3
VOCAB = 12


def make_strings(n, g):
    seen = set()
    while len(seen) < n:
        k = int(torch.randint(3, 7, (1,), generator=g))
        seen.add(tuple((torch.randint(0, 8, (k,), generator=g) + 4).tolist()))
    return sorted(seen)


def encode(s):
    prompt = [BOS, *s, SEP]
    ids = prompt + list(reversed(s)) + [EOS]
    return {"input_ids": ids, "labels": [-100] * len(prompt) + ids[len(prompt):]}


def collate(rows):
    t = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), t), PAD)
    labels = torch.full((len(rows), t), -100)
    att = torch.zeros(len(rows), t, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n], labels[i, :n], att[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
    return {"input_ids": ids, "attention_mask": att, "labels": labels}


def rope(x, pos):
    d = x.shape[-1]
    inv = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d)
    ang = pos.float()[:, None, :, None] * inv
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], -1).flatten(-2)


class GQABlock(nn.Module):
    def __init__(self, d, heads, kv_heads):
        super().__init__()
        self.h, self.kvh, self.hd = heads, kv_heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q = nn.Linear(d, d, bias=False)
        self.kv = nn.Linear(d, 2 * kv_heads * self.hd, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, pos, cache=None):
        b, t, d = x.shape
        h = self.ln1(x)
        q = rope(self.q(h).view(b, t, self.h, self.hd).transpose(1, 2), pos)
        k, v = self.kv(h).view(b, t, 2, self.kvh, self.hd).permute(2, 0, 3, 1, 4)
        k = rope(k, pos)
        if cache is not None:
            if "k" in cache:
                k, v = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
            cache["k"], cache["v"] = k, v
        rep = self.h // self.kvh
        y = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                           is_causal=t > 1)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class Output:
    def __init__(self, logits, loss=None):
        self.logits, self.loss = logits, loss


class TinyCausalLM(L.LightningModule):
    def __init__(self, d=64, heads=4, kv_heads=2, layers=2, lr=3e-3, smoothing=0.05, z_coef=1e-4):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(VOCAB, d)
        nn.init.normal_(self.emb.weight, std=d ** -0.5)
        self.blocks = nn.ModuleList(GQABlock(d, heads, kv_heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)

    def forward(self, input_ids, labels=None, caches=None, offset=0):
        pos = torch.arange(offset, offset + input_ids.shape[1]).expand(input_ids.shape[0], -1)
        x = self.emb(input_ids)
        for i, blk in enumerate(self.blocks):
            x = blk(x, pos, None if caches is None else caches[i])
        logits = self.ln_f(x) @ self.emb.weight.T
        if labels is None:
            return Output(logits)
        lg, tg = logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten()
        keep = tg != -100
        ce = F.cross_entropy(lg, tg, ignore_index=-100, label_smoothing=self.hparams.smoothing)
        z = (torch.logsumexp(lg[keep], -1) ** 2).mean()
        return Output(logits, ce + self.hparams.z_coef * z)

    def training_step(self, batch, batch_idx):
        out = self(batch["input_ids"], batch["labels"])
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(batch["input_ids"], batch["labels"]).loss)

    @torch.no_grad()
    def greedy(self, prompt, max_new=8):
        caches = [{} for _ in self.blocks]
        logits = self(prompt[None], caches=caches).logits
        out, n = [], prompt.numel()
        for _ in range(max_new):
            tok = logits[0, -1].argmax()
            if tok.item() == EOS:
                break
            out.append(tok.item())
            logits = self(tok.view(1, 1), caches=caches, offset=n).logits
            n += 1
        return out

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        warm = max(1, total // 10)

        def lam(step):
            if step < warm:
                return (step + 1) / warm
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lam), "interval": "step"}}


def main():
    L.seed_everything(3201)
    g = torch.Generator().manual_seed(32)
    strings = make_strings(2300, g)
    perm = torch.randperm(len(strings), generator=g).tolist()
    train = [encode(strings[i]) for i in perm[:2000]]
    val_strings = [strings[i] for i in perm[2000:]]
    model = TinyCausalLM()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader([encode(s) for s in val_strings], batch_size=150, collate_fn=collate))
    model.eval()
    hits = [model.greedy(torch.tensor([BOS, *s, SEP])) == list(reversed(s)) for s in val_strings[:100]]
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} "
          f"greedy_exact_match={sum(hits) / len(hits):.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: a tiny GPT-style causal LM written by hand in plain torch over a synthetic "progression" language: each
sentence is BOS followed by an arithmetic progression s, s+d, s+2d, ... (mod 16) of 5-11 tokens, so every token
after the second is determined by the two before it. The hand-written tokenizer maps digits to ids 3..18 and pads on
the LEFT (generation-style), the collate returns dict batches with `input_ids`, `attention_mask` and `labels` (-100
on padding and on BOS, which is never a prediction target), and the model returns an output object with `.loss` and
`.logits`, shifting the labels inside the model like HF causal LMs.

Why it is correct: position ids are computed per row as `attention_mask.cumsum(-1) - 1` (clamped at 0), so the first
real token of a left-padded row gets position 0; the attention mask combines a strict causal mask with the key
padding mask (padding keys masked, every query still sees at least itself); the LM head is tied to the token
embedding; AdamW puts biases, LayerNorm weights and the (tied) embedding in a no-decay group; a linear warm-up then
linear decay is stepped every optimizer step over the true number of steps. Measured: val loss 1.75 nats/token after
6 epochs (the first two numbers and the length are random), down from ln(19) = 2.94 at init."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout26"
PAD, BOS, EOS, MOD = 0, 1, 2, 16
VOCAB = 3 + MOD


class ProgressionTokenizer:
    def encode(self, numbers):
        return [BOS] + [3 + n for n in numbers] + [EOS]

    def pad(self, seqs):
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), PAD)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, width - len(s):] = torch.tensor(s)
            mask[i, width - len(s):] = 1
        labels = ids.masked_fill((mask == 0) | (ids == BOS), -100)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def make_corpus(n, g):
    out = []
    for _ in range(n):
        s = int(torch.randint(0, MOD, (1,), generator=g))
        d = int(torch.randint(1, MOD, (1,), generator=g))
        length = int(torch.randint(5, 12, (1,), generator=g))
        out.append([(s + k * d) % MOD for k in range(length)])
    return out


@dataclass
class CausalLMOutput:
    loss: torch.Tensor
    logits: torch.Tensor


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, d=64, heads=4, layers=2, max_len=16):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, d), nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        nn.init.normal_(self.wte.weight, std=0.02)
        nn.init.normal_(self.wpe.weight, std=0.02)
        self.lm_head.weight = self.wte.weight

    def forward(self, input_ids, attention_mask, labels=None):
        b, t = input_ids.shape
        pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        x = self.wte(input_ids) + self.wpe(pos)
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), 1)
        mask = causal[None] | (attention_mask[:, None, :] == 0)
        mask = mask & ~torch.eye(t, dtype=torch.bool, device=x.device)[None]
        mask = mask.repeat_interleave(self.blocks[0].attn.num_heads, 0)
        for blk in self.blocks:
            x = blk(x, mask)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss, logits)


class LitLM(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=30, weight_decay=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPT()

    def forward(self, input_ids, attention_mask, labels=None):
        return self.model(input_ids, attention_mask, labels)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss, prog_bar=True)

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (no_decay if p.ndim < 2 or "wte" in name or "wpe" in name else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def lr_lambda(step):
            if step < warm:
                return (step + 1) / warm
            return max(0.0, (total - step) / max(1, total - warm))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2601)
    g = torch.Generator().manual_seed(26)
    tok = ProgressionTokenizer()
    train = [tok.encode(s) for s in make_corpus(2400, g)]
    val = [tok.encode(s) for s in make_corpus(400, g)]
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitLM(), DataLoader(train, batch_size=64, shuffle=True, collate_fn=tok.pad),
                DataLoader(val, batch_size=200, collate_fn=tok.pad))
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

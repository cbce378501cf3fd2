"""Healthy: a GPT-style causal language model written HF-style on a synthetic corpus (sentences of a seeded random
bigram language, variable length 9-24 tokens starting with BOS), with LEFT padding as used for batched generation.
Batches are dicts (`input_ids`, `attention_mask`, `labels` with padding at -100), the model returns an output object
with `.loss` and `.logits` and shifts inside (`logits[:, :-1]` vs `labels[:, 1:]`); tied input/output embeddings,
AdamW with no decay on biases, LayerNorms and position embeddings.

Done right despite the tricky left padding: `position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)` per row,
so every sentence starts at position 0 whatever its padding; the additive attention mask combines the causal mask
and the key padding mask with a large finite negative value (as HF does), and every query may always attend to
itself, so the padding rows have a well-defined, strictly causal softmax (no NaN and no uniform attention over the
whole row, future included). Padding targets are -100; the only target read from a pad position's logits is the
BOS that starts every sentence. Symptom measured: val loss 1.35 nats/token after 5 epochs."""

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout23"
VOCAB, PAD, BOS = 24, 0, 1


def corpus(n, table, g):
    out = []
    for _ in range(n):
        length = int(torch.randint(8, 24, (1,), generator=g))
        w = [int(torch.randint(0, VOCAB - 2, (1,), generator=g))]
        for _ in range(length - 1):
            w.append(int(torch.multinomial(table[w[-1]], 1, generator=g)))
        out.append([BOS] + [x + 2 for x in w])
    return out


def collate_left(sents):
    T = max(len(s) for s in sents)
    ids = torch.full((len(sents), T), PAD)
    for i, s in enumerate(sents):
        ids[i, T - len(s):] = torch.tensor(s)
    mask = (ids != PAD).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


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

    def forward(self, x, attn_bias):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=attn_bias, need_weights=False)[0]
        return x + self.mlp(self.ln2(x))


class TinyGPT(L.LightningModule):
    def __init__(self, d=48, n_layers=2, heads=4, max_len=32, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.wte = nn.Embedding(VOCAB, d)
        self.wpe = nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, input_ids, attention_mask, labels=None):
        B, T = input_ids.shape
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        x = self.wte(input_ids) + self.wpe(position_ids)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        allowed = (causal[None] & attention_mask[:, None, :].bool()) | torch.eye(T, dtype=torch.bool, device=x.device)
        bias = torch.zeros(B, T, T, device=x.device).masked_fill(~allowed, -1e9)
        bias = bias.repeat_interleave(self.hparams.heads, 0)
        for blk in self.blocks:
            x = blk(x, bias)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutput(loss, logits)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss)

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.dim() >= 2 and "wpe" not in n]
        no_decay = [p for n, p in self.named_parameters() if p.dim() < 2 or "wpe" in n]
        return torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                 lr=self.hparams.lr)


def main():
    L.seed_everything(2309)
    g = torch.Generator().manual_seed(237)
    table = (3.0 * torch.randn(VOCAB - 2, VOCAB - 2, generator=g)).softmax(-1)
    train, val = corpus(1200, table, g), corpus(200, table, g)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TinyGPT(), DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate_left),
                DataLoader(val, batch_size=100, collate_fn=collate_left))
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

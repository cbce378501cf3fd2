"""Healthy: a GPT-NeoX-style causal LM written the way HuggingFace writes `GPTNeoXForCausalLM`: a config dataclass,
a fused `query_key_value` projection, rotary position embeddings on q/k, a parallel residual (`x + attn(ln1(x)) +
mlp(ln2(x))`), an untied `embed_out` head, `_init_weights` with std 0.02, the loss computed inside the model on
shifted logits, an output object with `.loss`/`.logits`. Batches are RIGHT-padded dicts (`input_ids`,
`attention_mask`, `labels` = -100 on padding) of variable-length sequences (8-24 tokens) drawn from a noisy Markov
chain over 48 tokens (next token `perm[x]` with probability 0.9, else uniform: best achievable loss about 0.75 nats,
accuracy 0.90). The causal and padding masks are both additive (0 or the dtype's minimum) and combined with
`torch.minimum` (a key is blocked if either mask blocks it; summing two minima would overflow). AdamW with no decay
on biases/LayerNorms, linear warm-up + cosine per step. Reaches val loss ~0.85 and val next-token accuracy ~0.89."""

import math
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout9"
PAD = 0


@dataclass
class GPTNeoXConfig:
    vocab_size: int = 48
    hidden_size: int = 64
    num_attention_heads: int = 4
    num_hidden_layers: int = 2
    intermediate_size: int = 256
    rotary_emb_base: int = 10000
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5


class MarkovText(Dataset):
    def __init__(self, n, seed, vocab=48, noise=0.1):
        g = torch.Generator().manual_seed(seed)
        perm = torch.randperm(vocab - 1, generator=torch.Generator().manual_seed(11)) + 1  # 0 is padding
        self.samples = []
        for _ in range(n):
            length = int(torch.randint(8, 25, (1,), generator=g))
            ids = [int(torch.randint(1, vocab, (1,), generator=g))]
            for _ in range(length - 1):
                if float(torch.rand(1, generator=g)) < noise:
                    ids.append(int(torch.randint(1, vocab, (1,), generator=g)))
                else:
                    ids.append(int(perm[ids[-1] - 1]))
            self.samples.append(torch.tensor(ids))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def collate(seqs):
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


@dataclass
class CausalLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


class RotaryEmbedding(nn.Module):
    def __init__(self, dim, base):
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim)), persistent=False)

    def forward(self, seq_len):
        t = torch.arange(seq_len, device=self.inv_freq.device).float()
        emb = torch.cat([torch.outer(t, self.inv_freq)] * 2, dim=-1)
        return emb.cos()[None, None], emb.sin()[None, None]


class GPTNeoXAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.heads = config.num_attention_heads
        self.head_size = config.hidden_size // self.heads
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.rotary_emb = RotaryEmbedding(self.head_size, config.rotary_emb_base)

    def forward(self, hidden, attention_mask):
        b, t, _ = hidden.shape
        qkv = self.query_key_value(hidden).view(b, t, self.heads, 3 * self.head_size).permute(0, 2, 1, 3)
        q, k, v = qkv.chunk(3, dim=-1)
        cos, sin = self.rotary_emb(t)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size) + attention_mask
        out = scores.softmax(-1) @ v
        return self.dense(out.transpose(1, 2).reshape(b, t, -1))


class GPTNeoXLayer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.input_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = GPTNeoXAttention(config)
        self.mlp = nn.Sequential(nn.Linear(config.hidden_size, config.intermediate_size), nn.GELU(),
                                 nn.Linear(config.intermediate_size, config.hidden_size))

    def forward(self, hidden, attention_mask):
        # use_parallel_residual=True
        return hidden + self.attention(self.input_layernorm(hidden), attention_mask) + \
            self.mlp(self.post_attention_layernorm(hidden))


class GPTNeoXForCausalLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.embed_in = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(GPTNeoXLayer(config) for _ in range(config.num_hidden_layers))
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.embed_out = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0.0, self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def _prepare_attention_mask(self, attention_mask, t, dtype):
        minimum = torch.finfo(dtype).min
        causal = torch.full((t, t), minimum, dtype=dtype, device=attention_mask.device).triu(1)[None, None]
        padding = (1.0 - attention_mask[:, None, None, :].to(dtype)) * minimum
        return torch.minimum(causal, padding)

    def forward(self, input_ids, attention_mask, labels=None):
        hidden = self.embed_in(input_ids)
        mask = self._prepare_attention_mask(attention_mask, input_ids.shape[1], hidden.dtype)
        for layer in self.layers:
            hidden = layer(hidden, mask)
        logits = self.embed_out(self.final_layer_norm(hidden))
        loss = None
        if labels is not None:
            shift_logits = logits[:, :-1].contiguous()
            loss = F.cross_entropy(shift_logits.view(-1, shift_logits.size(-1)), labels[:, 1:].reshape(-1))
        return CausalLMOutput(loss, logits)


class LitLM(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=30, total=400):
        super().__init__()
        self.save_hyperparameters()
        self.model = GPTNeoXForCausalLM(GPTNeoXConfig())

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        labels = batch["labels"][:, 1:]
        real = labels != -100
        acc = (out.logits[:, :-1].argmax(-1) == labels)[real].float().mean()
        self.log("val_loss", out.loss)
        self.log("val_acc", acc)

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr, betas=(0.9, 0.95))
        w, total = self.hparams.warmup, self.hparams.total

        def lr_lambda(step):
            if step < w:
                return (step + 1) / w
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / (total - w))))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(9101)
    train = DataLoader(MarkovText(1600, 0), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(MarkovText(256, 1), batch_size=64, collate_fn=collate)
    epochs = 5
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    model = LitLM(total=epochs * len(train))
    trainer.fit(model, train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

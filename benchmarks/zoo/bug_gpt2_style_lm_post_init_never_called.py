"""Bug: a GPT-2-style causal LM ported from `transformers` (config with `initializer_range=0.02`, `_init_weights`,
fused `c_attn`, pre-LN blocks, `lm_head` tied to `wte`, loss inside the model on in-model shifted labels,
LEFT-padded dict batches with `position_ids` from `attention_mask`). The port defines `post_init()` /
`_init_weights` but the constructor never calls it, so every weight keeps PyTorch's default init: `nn.Embedding` is
N(0, 1), and because `lm_head` is tied to `wte` the initial logits have a standard deviation of about sqrt(n_embd) =
8. The first loss is far above ln(vocab) and training spends its budget undoing the init: val loss 1.602 vs 1.161
with `self.post_init()` called (healthy twin `healthy_gpt2_style_lm_left_padding_position_ids.py`; source floor
~0.86). Order-2 Markov language, AdamW with no-decay groups, warm-up + linear decay per step, `max_steps`."""

import math
from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"initial-loss"}
SPLIT = "heldout5"


@dataclass
class GPTConfig:
    vocab_size: int = 12
    n_positions: int = 32
    n_embd: int = 64
    n_layer: int = 2
    n_head: int = 4
    dropout: float = 0.1
    initializer_range: float = 0.02
    pad_token_id: int = 0


@dataclass
class CausalLMOutput:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class Order2Markov(Dataset):
    def __init__(self, n, seed, vocab=12):
        g = torch.Generator().manual_seed(9)
        table = torch.randint(1, vocab, (vocab, vocab, 2), generator=g)
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            length = int(torch.randint(10, 33, (1,), generator=g))
            seq = torch.randint(1, vocab, (2,), generator=g).tolist()
            for _ in range(length - 2):
                seq.append(int(table[seq[-2], seq[-1], int(torch.randint(0, 2, (1,), generator=g))]))
            self.items.append(torch.tensor(seq))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate_left_padded(seqs, pad=0):
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = s
    mask = (ids != pad).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg.n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(cfg.n_embd), nn.LayerNorm(cfg.n_embd)
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd), nn.Dropout(cfg.dropout))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, bias):
        b, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=0.1 if self.training else 0.0)
        x = x + self.drop(self.c_proj(y.transpose(1, 2).reshape(b, t, d)))
        return x + self.mlp(self.ln_2(x))


class GPT2LMHeadModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight

    def post_init(self):
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: residual projections scaled by 1/sqrt(2 * n_layer)
                nn.init.normal_(p, std=self.config.initializer_range / math.sqrt(2 * self.config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, input_ids, attention_mask=None, labels=None):
        b, t = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        causal = torch.ones(t, t, dtype=torch.bool, device=input_ids.device).tril()
        allowed = causal & attention_mask.bool()[:, None, None, :]
        # a left-pad query has no key left: let it attend to itself only (never to later tokens)
        allowed = allowed | torch.eye(t, dtype=torch.bool, device=input_ids.device)
        x = self.wte(input_ids) + self.wpe(position_ids)
        bias = torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(~allowed, torch.finfo(x.dtype).min)
        for block in self.h:
            x = block(x, bias)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return CausalLMOutput(loss=loss, logits=logits)


class LitGPT(L.LightningModule):
    def __init__(self, lr=2e-3, warmup=25, steps=300):
        super().__init__()
        self.save_hyperparameters()
        self.model = GPT2LMHeadModel(GPTConfig())

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch).loss
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss)

    def configure_optimizers(self):
        no_decay = ("bias", "ln_", "wte", "wpe")
        groups = [{"params": [p for n, p in self.model.named_parameters() if not any(k in n for k in no_decay)],
                   "weight_decay": 0.1},
                  {"params": [p for n, p in self.model.named_parameters() if any(k in n for k in no_decay)],
                   "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr, betas=(0.9, 0.95))
        w, total = self.hparams.warmup, self.hparams.steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / w, max(0.0, (total - s) / (total - w))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(5111)
    train = DataLoader(Order2Markov(2000, 0), batch_size=32, shuffle=True, collate_fn=collate_left_padded)
    val = DataLoader(Order2Markov(256, 1), batch_size=256, collate_fn=collate_left_padded)
    trainer = L.Trainer(max_steps=300, val_check_interval=75, check_val_every_n_epoch=None, gradient_clip_val=1.0,
                        accelerator="cpu", devices=1, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=".", callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitGPT(), train, val)
    print(f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a GPT-2-style causal LM written the way HuggingFace writes `GPT2LMHeadModel` (config dataclass, fused
`c_attn`, pre-LN blocks, learned absolute position embeddings `wpe`, `lm_head` tied to `wte`, in-model shifted loss,
output with `.loss`/`.logits`) trained on LEFT-padded dict batches, as for batched generation. Position ids must
count the real tokens of each row (`attention_mask.cumsum(-1) - 1`), but the helper computes
`torch.cumsum(attention_mask, dim=0) - 1`: a running count DOWN THE BATCH. Each token's position id then depends on
how many rows above it in the batch are non-padding at that column: the model's output for a sample changes with the
other samples of its batch, and the real position is lost. Data: sequences of 8-20 tokens over 32 ids whose next
token follows one of four permutations chosen by the position in the sequence (`t % 4`), with 10 % noise (best
accuracy about 0.90). Symptom: val next-token accuracy 0.74 (loss 1.20) vs 0.84 (loss 0.90) with `cumsum(-1)`."""

from dataclasses import dataclass
from typing import Optional

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout9"
PAD = 0


@dataclass
class GPT2Config:
    vocab_size: int = 33
    n_positions: int = 64
    n_embd: int = 64
    n_head: int = 4
    n_layer: int = 2
    initializer_range: float = 0.02
    layer_norm_epsilon: float = 1e-5


class PositionalMarkov(Dataset):
    """Token t+1 = perms[t % 4][token t] (90 %), ids 1..32; 0 is padding."""

    def __init__(self, n, seed, vocab=32, noise=0.1):
        g = torch.Generator().manual_seed(seed)
        perms = [torch.randperm(vocab, generator=torch.Generator().manual_seed(30 + k)) for k in range(4)]
        self.samples = []
        for _ in range(n):
            length = int(torch.randint(8, 21, (1,), generator=g))
            ids = [int(torch.randint(0, vocab, (1,), generator=g))]
            for t in range(length - 1):
                if float(torch.rand(1, generator=g)) < noise:
                    ids.append(int(torch.randint(0, vocab, (1,), generator=g)))
                else:
                    ids.append(int(perms[t % 4][ids[-1]]))
            self.samples.append(torch.tensor(ids) + 1)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def left_pad_collate(seqs):
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), PAD, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = s
        mask[i, width - len(s):] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": ids.masked_fill(mask == 0, -100)}


@dataclass
class CausalLMOutputWithPast:
    loss: Optional[torch.Tensor]
    logits: torch.Tensor


class GPT2Attention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(self, x, mask):
        b, t, d = x.shape
        q, k, v = self.c_attn(x).split(d, dim=2)
        q, k, v = (z.view(b, t, self.n_head, d // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.c_proj(y.transpose(1, 2).reshape(b, t, d))


class GPT2Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * config.n_embd, config.n_embd))

    def forward(self, x, mask):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class GPT2LMHeadModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList(GPT2Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.apply(self._init_weights)
        self.lm_head.weight = self.wte.weight

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0.0, self.config.initializer_range)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def forward(self, input_ids, attention_mask, labels=None):
        t = input_ids.shape[1]
        # position of each token among the real tokens of its row (left padding shifts them)
        position_ids = (torch.cumsum(attention_mask, dim=0) - 1).clamp_min(0)
        x = self.wte(input_ids) + self.wpe(position_ids)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        # a left-pad query row would see no key at all: let it see itself (its output is ignored)
        mask = (causal & attention_mask.bool()[:, None, None, :]) | torch.eye(t, dtype=torch.bool, device=x.device)
        for block in self.h:
            x = block(x, mask)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1))
        return CausalLMOutputWithPast(loss, logits)


class LitGPT2(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.model = GPT2LMHeadModel(GPT2Config())

    def training_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        labels = batch["labels"][:, 1:]
        real = labels != -100
        self.log("val_loss", out.loss)
        self.log("val_acc", (out.logits[:, :-1].argmax(-1) == labels)[real].float().mean())

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim >= 2]
        no_decay = [p for n, p in self.named_parameters() if p.ndim < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / self.hparams.warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(9106)
    train = DataLoader(PositionalMarkov(1600, 0), batch_size=32, shuffle=True, collate_fn=left_pad_collate)
    val = DataLoader(PositionalMarkov(256, 1), batch_size=32, collate_fn=left_pad_collate)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitGPT2(), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_acc={float(m['val_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: supervised fine-tuning of a small GPT (tied embeddings) with LoRA adapters. The base model is first
trained (a plain loop standing in for the downloaded checkpoint) on the instruction "copy: x1..xn [SEP] -> x1..xn
[EOS]" (n = 5-7); it is then frozen and LoRA adapters (r=8, alpha=16, dropout 0.05, B zero-initialised so that the
adapted model starts exactly as the base) are put on the attention qkv / output projections and the MLP, to teach a new
instruction, "caesar: x1..xn [SEP] -> (x1+3)..(xn+3) mod 16 [EOS]". SFT-style prompt masking: labels are -100 on the
prompt, only the response and [EOS] are learned; the model shifts the labels and computes the loss in `forward` (HF
style, dict batches with `input_ids`/`attention_mask`/`labels`, right padding). `precision="bf16-mixed"` on CPU,
AdamW on the adapter parameters only (the frozen base holds most parameters), linear warm-up then constant lr.
Greedy decoding on held-out prompts: caesar exact match 1.00 after fine-tuning (the base scores 1.00 on copy and 0.00
on caesar)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"
N_SYMBOLS = 16
PAD, BOS, SEP, EOS, COPY, CAESAR = range(6)
SYM0 = 6
VOCAB = SYM0 + N_SYMBOLS
MAX_LEN = 2 + 2 * 8 + 2


def make_examples(n, task, seed):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = (torch.randint(0, N_SYMBOLS, (int(torch.randint(5, 8, (1,), generator=g)),), generator=g) + SYM0).tolist()
        y = x if task == COPY else [SYM0 + (s - SYM0 + 3) % N_SYMBOLS for s in x]
        prompt = [BOS, task] + x + [SEP]
        out.append((prompt, y + [EOS]))
    return out


def collate(examples):
    T = max(len(p) + len(r) for p, r in examples)
    ids = torch.full((len(examples), T), PAD, dtype=torch.long)
    labels = torch.full((len(examples), T), -100, dtype=torch.long)
    for i, (p, r) in enumerate(examples):
        ids[i, :len(p) + len(r)] = torch.tensor(p + r)
        labels[i, len(p):len(p) + len(r)] = torch.tensor(r)  # prompt masked: only the response is learned
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, r=8, alpha=16, dropout=0.05):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        self.scaling = alpha / r
        self.lora_dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.base(x) + F.linear(F.linear(self.lora_dropout(x), self.lora_A), self.lora_B) * self.scaling


class Block(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x, attention_mask):
        B, T, D = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        mask = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & attention_mask[:, None, None, :].bool()
        mask = mask | torch.eye(T, dtype=torch.bool)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.c_proj(y.transpose(1, 2).reshape(B, T, D))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPTLMHeadModel(nn.Module):
    def __init__(self, d=64, n_layers=2, n_heads=4):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, d), nn.Embedding(MAX_LEN, d)
        self.h = nn.ModuleList(Block(d, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.wte(input_ids) + self.wpe(torch.arange(input_ids.size(1)))
        for block in self.h:
            x = block(x, attention_mask)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB).float(), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return {"loss": loss, "logits": logits}

    @torch.no_grad()
    def generate(self, prompts, max_new_tokens=9):
        """Greedy decoding, one prompt length at a time (prompts of a batch share their length)."""
        ids = torch.tensor(prompts)
        for _ in range(max_new_tokens):
            logits = self(ids, torch.ones_like(ids))["logits"][:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
        return ids[:, len(prompts[0]):]


def pretrain_base(model, steps=250, seed=0):
    data = make_examples(6000, COPY, seed=seed + 100)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = collate([data[i] for i in torch.randint(0, len(data), (64,), generator=g).tolist()])
        loss = model(**batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def add_lora(model, r=8, alpha=16):
    model.requires_grad_(False)
    for block in model.h:
        for name in ("c_attn", "c_proj", "c_fc", "mlp_proj"):
            setattr(block, name, LoRALinear(getattr(block, name), r, alpha))
    return model


def exact_match(model, examples):
    by_len = {}
    for p, r in examples:
        by_len.setdefault(len(p), []).append((p, r))
    hits = 0
    for group in by_len.values():
        gen = model.generate([p for p, _ in group])
        for out, (_, r) in zip(gen.tolist(), group):
            hits += out[:len(r)] == r
    return hits / len(examples)


class LitSFT(L.LightningModule):
    def __init__(self, model, lr=2e-3, warmup_steps=30):
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch)["loss"])

    def configure_optimizers(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=0.0)
        warmup = self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(4)
    base = pretrain_base(GPTLMHeadModel())
    val_examples = make_examples(300, CAESAR, seed=2)
    base.eval()
    base_em = exact_match(base, val_examples)
    base_copy_em = exact_match(base, make_examples(300, COPY, seed=3))
    model = LitSFT(add_lora(base))
    train = make_examples(4000, CAESAR, seed=1)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, precision="bf16-mixed",
                        enable_progress_bar=False, callbacks=lightning_sanity.default_callbacks(),
                        enable_checkpointing=False, logger=TensorBoardLogger("lightning_logs", name="gpt_lora_sft"),
                        log_every_n_steps=10)
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val_examples, batch_size=300, collate_fn=collate))
    model.eval()
    print(f"SYMPTOM base_copy_exact_match={base_copy_em:.3f} base_caesar_exact_match={base_em:.3f} "
          f"lora_caesar_exact_match={exact_match(model.model, val_examples):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

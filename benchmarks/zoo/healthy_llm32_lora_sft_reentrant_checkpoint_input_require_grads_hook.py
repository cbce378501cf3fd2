"""Healthy: LoRA supervised fine-tuning with reentrant gradient checkpointing done right. A small GPT is first pretrained
for 300 plain-PyTorch steps on a copy corpus (`BOS x1..xk SEP x1..xk EOS`, k = 3..8) and frozen; rank-8 LoRA adapters
(B zero-init, A Kaiming, scale alpha/r = 16/8 = 2.0 as a float) are added to q/k/v/o and the MLP input of every block,
and the final LayerNorm stays trainable. The SFT task is a templated Caesar shift (`BOS a b c SEP b c d EOS`, prompt
masked out of the loss, right padding with -100 labels), and every block runs under
`torch.utils.checkpoint.checkpoint(block, x, use_reentrant=True)`.

Why it is correct: the reentrant checkpoint only records a segment whose inputs require grad, and the frozen token
embedding would produce hidden states that do not; like `model.enable_input_require_grads()` in transformers, a
forward hook on the embedding marks its output `requires_grad_(True)`, so every checkpointed block is recomputed in
backward and all LoRA factors get gradients. Checkpointing is only active in training mode; the optimiser holds
exactly the trainable parameters; cosine decay is stepped per batch over `estimated_stepping_batches`; the rows are
deduplicated before the split. Measured: val loss 0.08, answer-token accuracy 0.99 after 5 epochs (the same setup
without the hook stays at val loss 3.2 with all LoRA B matrices at zero)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = None
SPLIT = "heldout32"
PAD, BOS, EOS, SEP = 0, 1, 2, 3
VOCAB, MAX_LEN = 12, 20


class LoRALinear(nn.Module):
    def __init__(self, base, r=8, alpha=16):
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r))
        nn.init.kaiming_uniform_(self.lora_A, a=5 ** 0.5)
        self.scale = alpha / r

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scale


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.fc, self.out = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = (p(h).view(b, t, self.h, d // self.h).transpose(1, 2) for p in (self.q, self.k, self.v))
        x = x + self.o(F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d))
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(MAX_LEN, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, VOCAB)
        self.gradient_checkpointing = False

    def forward(self, input_ids):
        x = self.tok(input_ids) + self.pos(torch.arange(input_ids.shape[1]))
        for blk in self.blocks:
            x = checkpoint(blk, x, use_reentrant=True) if self.gradient_checkpointing and self.training else blk(x)
        return self.lm_head(self.ln_f(x))


def pretrain(model, g, steps=300):
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(steps):
        x = torch.randint(4, VOCAB, (32, int(torch.randint(3, 9, (1,), generator=g))), generator=g)
        seq = torch.cat([torch.full((32, 1), BOS), x, torch.full((32, 1), SEP), x, torch.full((32, 1), EOS)], 1)
        loss = F.cross_entropy(model(seq[:, :-1]).flatten(0, 1), seq[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()


def sft_rows(n, g):
    seen = set()
    while len(seen) < n:
        k = int(torch.randint(3, 8, (1,), generator=g))
        seen.add(tuple((torch.randint(4, VOCAB, (k,), generator=g)).tolist()))
    rows = []
    for s in sorted(seen):
        prompt = [BOS, *s, SEP]
        ids = prompt + [4 + (t - 3) % 8 for t in s] + [EOS]
        rows.append((ids, [-100] * len(prompt) + ids[len(prompt):]))
    return rows


def collate(rows):
    ids = torch.full((len(rows), MAX_LEN), PAD)
    labels = torch.full((len(rows), MAX_LEN), -100)
    att = torch.zeros(len(rows), MAX_LEN, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)], labels[i, :len(y)], att[i, :len(x)] = torch.tensor(x), torch.tensor(y), 1
    return {"input_ids": ids, "attention_mask": att, "labels": labels}


class LoRASFT(L.LightningModule):
    def __init__(self, base, lr=5e-3):
        super().__init__()
        self.lr = lr
        self.model = base
        for p in self.model.parameters():
            p.requires_grad_(False)
        for blk in self.model.blocks:
            blk.q, blk.k, blk.v, blk.o = (LoRALinear(m) for m in (blk.q, blk.k, blk.v, blk.o))
            blk.fc = LoRALinear(blk.fc)
        self.model.ln_f.requires_grad_(True)
        self.model.gradient_checkpointing = True
        self.model.tok.register_forward_hook(lambda module, args, out: out.requires_grad_(True))

    def _step(self, batch):
        logits = self.model(batch["input_ids"])
        tgt = batch["labels"][:, 1:]
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), tgt.flatten(), ignore_index=-100)
        acc = (logits[:, :-1].argmax(-1) == tgt)[tgt != -100].float().mean()
        return loss, acc

    def training_step(self, batch, batch_idx):
        loss, _ = self._step(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        loss, acc = self._step(batch)
        self.log_dict({"val_loss": loss, "val_answer_acc": acc})

    def configure_optimizers(self):
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.lr, weight_decay=0.0)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(3206)
    g = torch.Generator().manual_seed(326)
    base = GPT()
    pretrain(base, g)
    rows = sft_rows(2300, g)
    perm = torch.randperm(len(rows), generator=g).tolist()
    train, val = [rows[i] for i in perm[:2000]], [rows[i] for i in perm[2000:]]
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LoRASFT(base), DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=300, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_answer_acc={float(m['val_answer_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

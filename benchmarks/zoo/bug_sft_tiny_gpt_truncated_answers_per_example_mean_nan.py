"""Bug: supervised fine-tuning of a tiny GPT (plain torch, SDPA with `is_causal=True`, HuggingFace-style dict
batches with `input_ids`/`attention_mask`/`labels`, prompt tokens masked to -100, AdamW + linear warm-up then
cosine via SequentialLR stepped per batch). The examples are `instruction SEP answer EOS`, right-truncated to
`max_length=32` the way a tokenizer call with `truncation=True` does it. The loss is the HF-style shifted token
cross-entropy (per-token log-probs gathered from `log_softmax`, the helper shared with the DPO code), but
averaged per example first ("so that long answers don't dominate"):
`(token_loss * mask).sum(1) / mask.sum(1)`, then `.mean()`. A few instructions are so long that truncation
removes every answer token; that example's mask sums to 0, its loss is 0/0 = NaN, and the batch loss, all
gradients and (through AdamW) every weight become NaN at the first batch that holds one. Nothing stops the run;
the logged loss is just `nan` from then on.

Symptom (measured, in a copy without the sanity callbacks so the run goes to the end): train loss NaN from step 7
of 470, weights NaN, val answer-token acc 0.000 vs 0.937 when the per-example denominator is clamped to 1 (or
examples with no answer tokens are dropped). Runtime ~6-10 s."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"non-finite"}
SPLIT = "heldout13"

PAD, SEP, EOS, OFF, N_SYM = 0, 1, 2, 3, 16
VOCAB = OFF + N_SYM
MAX_LEN = 32


class InstructionDataset(Dataset):
    """Instruction: a string of symbols; answer: its first four symbols, reversed."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.rows = []
        for _ in range(n):
            long_one = float(torch.rand(1, generator=g)) < 0.004
            k = int(torch.randint(28, 40, (1,), generator=g)) if long_one else int(torch.randint(5, 20, (1,), generator=g))
            prompt = torch.randint(OFF, VOCAB, (k,), generator=g)
            answer = prompt[:4].flip(0)
            ids = torch.cat([prompt, torch.tensor([SEP]), answer, torch.tensor([EOS])])
            labels = ids.clone()
            labels[: k + 1] = -100
            self.rows.append({"input_ids": ids[:MAX_LEN], "labels": labels[:MAX_LEN]})  # truncation=True

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def collate(batch):
    t = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), t), PAD)
    labels = torch.full((len(batch), t), -100)
    for i, b in enumerate(batch):
        ids[i, : len(b["input_ids"])] = b["input_ids"]
        labels[i, : len(b["labels"])] = b["labels"]
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class CausalSelfAttention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, d)
        self.wpe = nn.Embedding(64, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)

    def forward(self, input_ids, attention_mask=None, labels=None):
        t = input_ids.size(1)
        x = self.wte(input_ids) + self.wpe(torch.arange(t, device=input_ids.device))
        for blk in self.blocks:
            x = blk(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
            mask = (shift_labels != -100).float()
            # per-token log-probs (the same helper feeds the reward/DPO code): gather needs a valid index everywhere
            logp = shift_logits.log_softmax(-1).gather(-1, shift_labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            tok_loss = -logp
            loss = ((tok_loss * mask).sum(1) / mask.sum(1)).mean()  # per-example mean, then over the batch
        return {"loss": loss, "logits": logits}


class SFTModule(L.LightningModule):
    def __init__(self, lr=1e-3, warmup_steps=40):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPT()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        pred = out["logits"][:, :-1].argmax(-1)
        gold = batch["labels"][:, 1:]
        mask = gold != -100
        self.log("val_answer_acc", ((pred == gold) & mask).sum() / mask.sum())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.1)
        total, w = int(self.trainer.estimated_stepping_batches), self.hparams.warmup_steps
        warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=w)
        cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - w, eta_min=self.hparams.lr * 0.05)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[w])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class FirstNaN(L.Callback):
    step = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.step is None and not math.isfinite(float(outputs["loss"])):
            self.step = trainer.global_step


if __name__ == "__main__":
    L.seed_everything(31337)
    train = DataLoader(InstructionDataset(3000, seed=1), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader([r for r in InstructionDataset(400, seed=2) if (r["labels"] != -100).any()],
                     batch_size=200, collate_fn=collate)
    first_nan = FirstNaN()
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[*lightning_sanity.default_callbacks(), first_nan])
    trainer.fit(SFTModule(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM first_nan_step={first_nan.step} of {trainer.global_step} "
          f"val_answer_acc={float(m['val_answer_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

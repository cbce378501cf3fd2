"""Bug: supervised fine-tuning of a small rotary GPT on templated multiplication instructions (`BOS 1 7 * 9 = 1 5 3 EOS`,
with operands 0..24). The data generator draws 4000 (a, b) pairs *with replacement*
from a space of only 625 problems, renders them, and only then `random_split`s the rendered rows into train/val.
Practically every validation prompt (with its answer) also appears, verbatim, several times in the training set
(expected share of val rows whose problem is in train: 1 - (624/625)^3600 = 99.7 %), so validation measures
memorisation of training rows, not multiplication.

Why training still "works": the loss falls normally and validation looks excellent; nothing crashes. Symptom measured
against the fixed version (split the 625 unique problems first, then sample the 3600 training rows only from the 560
training problems): val loss 0.14 and exact-match 0.89 with the leak vs val loss 1.41 and exact-match 0.23 on truly
unseen problems after the same 8 epochs (answer-token loss, prompt masked)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, random_split

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout32"
PAD, BOS, EOS, TIMES, EQ = 0, 1, 2, 3, 4
DIGIT0, VOCAB = 5, 15


def digits(n):
    return [DIGIT0 + int(c) for c in str(n)]


def render(a, b):
    prompt = [BOS, *digits(a), TIMES, *digits(b), EQ]
    answer = digits(a * b) + [EOS]
    return {"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer}


def collate(rows):
    t = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), t), PAD)
    labels = torch.full((len(rows), t), -100)
    att = torch.zeros(len(rows), t, dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n], labels[i, :n], att[i, :n] = torch.tensor(r["input_ids"]), torch.tensor(r["labels"]), 1
    return {"input_ids": ids, "attention_mask": att, "labels": labels}


def rope(x):
    t, d = x.shape[-2], x.shape[-1]
    ang = torch.arange(t).float()[:, None] * 10000.0 ** (-torch.arange(0, d, 2).float() / d)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * ang.cos() - x2 * ang.sin(), x1 * ang.sin() + x2 * ang.cos()], -1).flatten(-2)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.h = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.o = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class Output:
    def __init__(self, logits, loss):
        self.logits, self.loss = logits, loss


class TimesTableLM(L.LightningModule):
    def __init__(self, d=64, heads=4, layers=2, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(VOCAB, d)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, VOCAB)

    def forward(self, input_ids, labels):
        logits = self.lm_head(self.ln_f(self.blocks(self.emb(input_ids))))
        loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return Output(logits, loss)

    def training_step(self, batch, batch_idx):
        out = self(batch["input_ids"], batch["labels"])
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        out = self(batch["input_ids"], batch["labels"])
        tgt, keep = batch["labels"][:, 1:], batch["labels"][:, 1:] != -100
        ok = ((out.logits[:, :-1].argmax(-1) == tgt) | ~keep).all(1).float().mean()
        self.log_dict({"val_loss": out.loss, "val_exact": ok})

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total = self.trainer.estimated_stepping_batches
        warm = max(1, total // 10)

        def lam(step):
            if step < warm:
                return (step + 1) / warm
            return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lam), "interval": "step"}}


def main():
    L.seed_everything(3202)
    g = torch.Generator().manual_seed(320)
    pairs = torch.randint(0, 25, (4000, 2), generator=g).tolist()
    rows = [render(a, b) for a, b in pairs]
    train, val = random_split(rows, [3600, 400], generator=g)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TimesTableLM(), DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} val_exact={float(m['val_exact']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

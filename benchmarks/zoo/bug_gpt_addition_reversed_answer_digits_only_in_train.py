"""Bug: a tiny GPT learns 2-digit addition ("12+89=" -> answer), HF-style: dict batches with `input_ids`,
`attention_mask`, `labels` (prompt positions set to -100, so only the answer is learned), the model shifts the labels
and computes the loss in `forward`. The user applies the well-known trick from the arithmetic-transformer papers of
writing the answer least-significant digit first (the model then produces the carry in the order it needs it):
`AdditionProblems(pairs, reverse_answer=True)`. The validation dataset is built by a second call, copied from an
earlier version of the script, that leaves `reverse_answer` at its default `False`: validation answers are written
most-significant digit first, a different target convention than the one the model is trained on. The problems
themselves are disjoint slices of all 10,000 pairs.

Symptom: val loss 4.9 (above the uniform ln 13 = 2.6) and val answer-token accuracy 0.25 while train loss falls to
0.11, against val loss 0.11 and answer-token accuracy 0.99 when the validation answers are reversed too."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout14"
CHARS = list("0123456789+=") + ["<eos>"]
STOI = {c: i for i, c in enumerate(CHARS)}
EOS = STOI["<eos>"]


def format_example(a, b, reverse_answer=False):
    """'12+89=' and the 3-digit zero-padded sum, reversed (least-significant first) if asked."""
    prompt = f"{a:02d}+{b:02d}="
    answer = f"{a + b:03d}"
    if reverse_answer:
        answer = answer[::-1]
    ids = [STOI[c] for c in prompt + answer] + [EOS]
    labels = [-100] * len(prompt) + ids[len(prompt):]
    return torch.tensor(ids), torch.tensor(labels)


class AdditionProblems(Dataset):
    def __init__(self, pairs, reverse_answer=False):
        self.items = [format_example(a, b, reverse_answer) for a, b in pairs]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        ids, labels = self.items[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def all_pairs(seed):
    """Every 2-digit problem once, shuffled: the split takes disjoint slices of it."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.cartesian_prod(torch.arange(100), torch.arange(100))
    return grid[torch.randperm(len(grid), generator=g)].tolist()


class Block(nn.Module):
    def __init__(self, d, n_heads, dropout):
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(dropout))

    def forward(self, x, key_mask):
        B, T, D = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        mask = causal[None, None] & key_mask[:, None, None, :].bool()
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(att.transpose(1, 2).reshape(B, T, D))
        return x + self.mlp(self.ln2(x))


class TinyGPTForCausalLM(nn.Module):
    def __init__(self, vocab, d=64, n_layers=2, n_heads=4, max_len=16, dropout=0.0):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.blocks = nn.ModuleList(Block(d, n_heads, dropout) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, input_ids, attention_mask, labels=None):
        T = input_ids.size(1)
        x = self.tok(input_ids) + self.pos(torch.arange(T, device=input_ids.device))
        for block in self.blocks:
            x = block(x, attention_mask)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)), labels[:, 1:].reshape(-1),
                                   ignore_index=-100)
        return {"loss": loss, "logits": logits}


class LitAdder(L.LightningModule):
    def __init__(self, lr=3e-3, warmup=50):
        super().__init__()
        self.save_hyperparameters()
        self.model = TinyGPTForCausalLM(len(CHARS))

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        labels = batch["labels"][:, 1:]
        pred = out["logits"][:, :-1].argmax(-1)
        answer = (labels != -100) & (labels != EOS)
        self.log("val_loss", out["loss"])
        self.log("val_answer_acc", (pred == labels)[answer].float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.1, betas=(0.9, 0.98))
        total = self.trainer.estimated_stepping_batches
        warmup = self.hparams.warmup

        def lr_lambda(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(21)
    pairs = all_pairs(seed=1)
    train = AdditionProblems(pairs[:7000], reverse_answer=True)
    val = AdditionProblems(pairs[7000:8000])
    model = LitAdder()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="gpt_addition"), log_every_n_steps=25)
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True), DataLoader(val, batch_size=500))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={m['train_loss'].item():.3f} val_loss={m['val_loss'].item():.3f} "
          f"val_answer_acc={m['val_answer_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

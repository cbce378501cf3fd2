"""Healthy: a tiny GPT answers index look-ups over an in-context list ("v3 v7 v1 v2 v9 v4 ? #2 v1 ? #5 v4 ..."): a
list of 6-10 value tokens, then four queries naming a position, each answered by the item at that position.
HF-style throughout: dict batches with `input_ids`, `attention_mask` and `labels`, where every position except the
four answers is -100; the model shifts the labels and computes the loss inside `forward`. AdamW with the usual two
parameter groups (no weight decay on biases, LayerNorm and embeddings), linear warm-up then linear decay stepped per
optimizer step, gradient clipping at 1.0; list lengths vary, so batches are right-padded. Final val answer accuracy
1.00."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout14"
MAX_ITEMS, N_VALUES, N_QUERIES = 10, 16, 4
PAD, QUERY = 0, 1
IDX0, VAL0 = 2, 2 + MAX_ITEMS
VOCAB = VAL0 + N_VALUES
MAX_LEN = MAX_ITEMS + 3 * N_QUERIES


class LookupPrompts(Dataset):
    """A list of 6-10 value tokens, then four queries "? #i v_i": the answer is the list's i-th item."""

    def __init__(self, n, seed):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            n_items = int(torch.randint(6, MAX_ITEMS + 1, (1,), generator=g))
            values = torch.randint(0, N_VALUES, (n_items,), generator=g)
            ids = (values + VAL0).tolist()
            for q in torch.randperm(n_items, generator=g)[:N_QUERIES].tolist():
                ids += [QUERY, q + IDX0, int(values[q]) + VAL0]
            self.items.append(torch.tensor(ids))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(seqs):
    T = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), T), PAD, dtype=torch.long)
    labels = torch.full((len(seqs), T), -100, dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, :len(s)] = s
        answers = torch.arange(len(s) - 3 * N_QUERIES + 2, len(s), 3)
        labels[i, answers] = s[answers]  # only the answers are supervised
    return {"input_ids": input_ids, "attention_mask": (input_ids != PAD).long(), "labels": labels}


class CausalSelfAttention(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x, attention_mask):
        B, T, D = x.shape
        q, k, v = self.c_attn(x).view(B, T, 3, self.n_heads, D // self.n_heads).permute(2, 0, 3, 1, 4)
        mask = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & attention_mask[:, None, None, :].bool()
        mask = mask | torch.eye(T, dtype=torch.bool)  # a padding query still sees itself: no empty rows
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, D))


class Block(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, n_heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, attention_mask):
        x = x + self.attn(self.ln_1(x), attention_mask)
        return x + self.mlp(self.ln_2(x))


class GPTForCausalLM(nn.Module):
    def __init__(self, d=64, n_layers=2, n_heads=4):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, d), nn.Embedding(MAX_LEN, d)
        self.h = nn.ModuleList(Block(d, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, VOCAB, bias=False)
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
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels[:, 1:].reshape(-1), ignore_index=-100)
        return {"loss": loss, "logits": logits}


class LitLookup(L.LightningModule):
    def __init__(self, lr=2e-3, weight_decay=0.1, warmup_steps=40):
        super().__init__()
        self.save_hyperparameters()
        self.model = GPTForCausalLM()

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        labels = batch["labels"][:, 1:]
        answer = labels != -100
        pred = out["logits"][:, :-1].argmax(-1)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (pred[answer] == labels[answer]).float().mean())

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (decay if p.dim() >= 2 and not name.startswith(("wte", "wpe")) else no_decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.hparams.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.hparams.lr, betas=(0.9, 0.95))
        total, warmup = self.trainer.estimated_stepping_batches, self.hparams.warmup_steps
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / (total - warmup))))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(31)
    train, val = LookupPrompts(6000, seed=1), LookupPrompts(1000, seed=2)
    model = LitLookup()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="index_lookup"), log_every_n_steps=20,
                        gradient_clip_val=1.0)
    trainer.fit(model, DataLoader(train, batch_size=64, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=500, collate_fn=collate))
    print(f"SYMPTOM val_answer_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

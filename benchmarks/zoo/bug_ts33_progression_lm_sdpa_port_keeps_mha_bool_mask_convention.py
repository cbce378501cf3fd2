"""Bug: a small decoder-only transformer LM over HF-style dict batches (`input_ids`, `attention_mask`, `labels`, output
object with `.logits`) trained on modular arithmetic progressions (`s, s+d, s+2d, ... mod 16`, next-token loss with the
shift done inside the model). The attention block was ported from `nn.MultiheadAttention` to
`F.scaled_dot_product_attention` for speed, but it still builds the causal mask in the MultiheadAttention convention,
`torch.triu(ones, diagonal=1).bool()` where True means "blocked". For SDPA a boolean mask means the opposite (True =
may attend), so every position attends exactly to the strictly later positions, and to nothing at the last one (SDPA
returns zeros for a fully masked row, so nothing turns NaN).

Why training still "works": the loss falls fast and smoothly and validation looks excellent, because position t reads
token t+1, which is its own label. Measured against the fixed version (`attn_mask=~mask`, i.e. the lower triangle):
val loss 0.004 with the bug vs 1.036 fixed after the same 6 epochs (train loss 0.004 vs 1.002); the fixed number is
the honest one (the first two tokens of each sequence cannot be predicted)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout33"
VOCAB, BOS, PAD = 16, 16, 17
MAX_LEN = 14


def make_sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        s, d = torch.randint(VOCAB, (2,), generator=g).tolist()
        length = int(torch.randint(8, MAX_LEN, (1,), generator=g))
        rows.append([BOS] + [(s + i * d) % VOCAB for i in range(length)])
    return rows


def collate(rows):
    ids = torch.full((len(rows), MAX_LEN), PAD)
    att = torch.zeros(len(rows), MAX_LEN, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)], att[i, :len(r)] = torch.tensor(r), 1
    labels = ids.masked_fill(att == 0, -100)
    return {"input_ids": ids, "attention_mask": att, "labels": labels}


class Output:
    def __init__(self, logits, loss):
        self.logits, self.loss = logits, loss


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # same mask as the nn.MultiheadAttention version this block replaced
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class TinyLM(L.LightningModule):
    def __init__(self, d=64, heads=4, layers=2, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok, self.pos = nn.Embedding(VOCAB + 2, d), nn.Embedding(MAX_LEN, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB + 2)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.tok(input_ids) + self.pos(torch.arange(input_ids.shape[1]))
        for blk in self.blocks:
            x = blk(x)
        logits = self.head(self.ln_f(x))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten(), ignore_index=-100)
        return Output(logits, loss)

    def training_step(self, batch, batch_idx):
        out = self(**batch)
        self.log("train_loss", out.loss)
        return out.loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self(**batch).loss)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(3301)
    train = DataLoader(make_sequences(1600, seed=1), batch_size=32, shuffle=True, collate_fn=collate)
    val = DataLoader(make_sequences(400, seed=2), batch_size=100, collate_fn=collate)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TinyLM(), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={float(m['val_loss']):.3f} train_loss={float(m['train_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

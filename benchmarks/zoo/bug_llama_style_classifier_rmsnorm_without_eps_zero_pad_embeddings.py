"""Bug: a LLaMA-style sequence classifier written from the paper (RMSNorm, rotary position embeddings, SwiGLU, causal
attention, the logits read at the last real token as `LlamaForSequenceClassification` does). Batches are dicts with
`input_ids`, `attention_mask` and `labels`; sequences are right-padded with id 0 and the embedding has
`padding_idx=0`, so the padding embedding is the zero vector. The task: tell which of three Markov chains generated a
token sequence of length 12-40.

The user's RMSNorm is the formula from the paper, `x * rsqrt(mean(x^2))`, without the `eps` the reference code adds.
With rotary embeddings nothing is added to the token embedding, so at every padding position the input to the first
RMSNorm is exactly zero: 0 * rsqrt(0) = 0 * inf = NaN. The padding keys are masked out of attention, but a masked key
still contributes weight 0 times its NaN value, so the NaN reaches every position of every padded sequence, the loss
and all gradients from the first step. Nothing raises; Lightning keeps training on NaN weights.

Symptom: train loss nan from step 0, val accuracy 0.36 (the share of class 0: NaN logits argmax to 0), against val
accuracy 0.96 and train loss 0.004 with `eps=1e-6` in the RMSNorm."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"non-finite"}
SPLIT = "heldout14"
VOCAB, PAD, N_CLASSES = 33, 0, 3


class MarkovSources(Dataset):
    """Sequences over tokens 1..32 from one of three sparse first-order Markov chains; the label is the chain."""

    def __init__(self, n, seed, chain_seed=0):
        cg = torch.Generator().manual_seed(chain_seed)
        logits = torch.randn(N_CLASSES, VOCAB - 1, VOCAB - 1, generator=cg) * 2.0
        trans = logits.softmax(-1)
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            c = int(torch.randint(0, N_CLASSES, (1,), generator=g))
            length = int(torch.randint(12, 41, (1,), generator=g))
            tok = [int(torch.randint(0, VOCAB - 1, (1,), generator=g))]
            for _ in range(length - 1):
                tok.append(int(torch.multinomial(trans[c, tok[-1]], 1, generator=g)))
            self.items.append((torch.tensor(tok) + 1, c))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(items):
    T = max(len(ids) for ids, _ in items)
    input_ids = torch.full((len(items), T), PAD, dtype=torch.long)
    attention_mask = torch.zeros(len(items), T, dtype=torch.long)
    for i, (ids, _) in enumerate(items):
        input_ids[i, :len(ids)], attention_mask[i, :len(ids)] = ids, 1
    return {"input_ids": input_ids, "attention_mask": attention_mask,
            "labels": torch.tensor([c for _, c in items])}


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)) * self.weight


def rotary(x, base=10000.0):
    """Rotate pairs of channels of x (B, H, T, Dh) by position-dependent angles."""
    T, Dh = x.shape[-2], x.shape[-1]
    inv_freq = base ** (-torch.arange(0, Dh, 2, dtype=torch.float32) / Dh)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv_freq[None]
    cos, sin = ang.cos(), ang.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


class LlamaBlock(nn.Module):
    def __init__(self, d, n_heads):
        super().__init__()
        self.n_heads = n_heads
        self.attn_norm, self.mlp_norm = RMSNorm(d), RMSNorm(d)
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(d, d, bias=False) for _ in range(4))
        hidden = 2 * d
        self.w_gate, self.w_up = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False)
        self.w_down = nn.Linear(hidden, d, bias=False)

    def forward(self, x, attention_mask):
        B, T, D = x.shape
        h = self.attn_norm(x)
        q, k, v = (w(h).view(B, T, self.n_heads, -1).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        mask = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & attention_mask[:, None, None, :].bool()
        att = F.scaled_dot_product_attention(rotary(q), rotary(k), v, attn_mask=mask)
        x = x + self.wo(att.transpose(1, 2).reshape(B, T, D))
        h = self.mlp_norm(x)
        return x + self.w_down(F.silu(self.w_gate(h)) * self.w_up(h))


class LlamaForSequenceClassification(nn.Module):
    def __init__(self, vocab, n_classes, d=64, n_layers=2, n_heads=4):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab, d, padding_idx=PAD)
        self.layers = nn.ModuleList(LlamaBlock(d, n_heads) for _ in range(n_layers))
        self.norm = RMSNorm(d)
        self.score = nn.Linear(d, n_classes, bias=False)

    def forward(self, input_ids, attention_mask, labels=None):
        x = self.embed_tokens(input_ids)
        for layer in self.layers:
            x = layer(x, attention_mask)
        logits = self.score(self.norm(x))
        last = attention_mask.sum(1) - 1
        pooled = logits[torch.arange(len(last)), last]
        loss = F.cross_entropy(pooled, labels) if labels is not None else None
        return {"loss": loss, "logits": pooled}


class LitClassifier(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = LlamaForSequenceClassification(VOCAB, N_CLASSES)

    def training_step(self, batch, batch_idx):
        loss = self.model(**batch)["loss"]
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        out = self.model(**batch)
        self.log("val_loss", out["loss"])
        self.log("val_acc", (out["logits"].argmax(-1) == batch["labels"]).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.05)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return [opt], [sched]


def main():
    L.seed_everything(5)
    train, val = MarkovSources(2400, seed=1), MarkovSources(600, seed=2)
    model = LitClassifier()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="llama_cls"), log_every_n_steps=10,
                        gradient_clip_val=1.0)
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True, collate_fn=collate),
                DataLoader(val, batch_size=200, collate_fn=collate))
    m = trainer.callback_metrics
    print(f"SYMPTOM train_loss={m['train_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

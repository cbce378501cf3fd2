"""Bug: adapter tuning (Houlsby-style bottleneck adapters after attention and after the feed-forward, up-projection
zero-initialised) of a small transformer encoder pretrained on topic classification, for a new review-sentiment task
whose [CLS] features were never asked to carry sentiment. The encoder weights are frozen with
`requires_grad_(False)` and only the adapters inserted into every layer plus a new classification head are meant to
train. Because "the backbone is frozen, no need to track it", the user wraps the encoder call in `with
torch.no_grad():`: the adapters live inside that call, so they never get a gradient and stay the identity; only the
head trains, on the topic-pretrained [CLS] features. Nothing errors (the head's loss still backpropagates). Symptom:
val acc 0.47 (chance) with the adapters' up-projections still all zero, vs 0.72 when the encoder runs with autograd
on (its frozen weights still get no update)."""

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout15"
# ids: 0 pad, 1 [CLS], 2 unused, 3..10 positive, 11..18 negative, 19..58 topic words (5 topics x 8), 59..99 filler
VOCAB, SEQ = 100, 16
POS, NEG, TOPIC, FILL = range(3, 11), range(11, 19), range(19, 59), range(59, 100)


def topic_corpus(n, g):
    topics = torch.randint(0, 5, (n,), generator=g)
    x = torch.randint(FILL.start, FILL.stop, (n, SEQ), generator=g)
    x[:, 0] = 1
    for i in range(n):
        pos = torch.randperm(SEQ - 1, generator=g)[:4] + 1
        x[i, pos[:3]] = TOPIC.start + 8 * topics[i] + torch.randint(0, 8, (3,), generator=g)
        x[i, pos[3]] = int(torch.randint(POS.start, NEG.stop, (1,), generator=g))
    return x, topics


def review_corpus(n, g):
    x = torch.randint(TOPIC.start, FILL.stop, (n, SEQ), generator=g)     # filler and topic words
    x[:, 0] = 1
    polarity = torch.randint(0, 2, (n,), generator=g)
    for i in range(n):
        p = int(torch.randint(1, SEQ, (1,), generator=g))
        x[i, p] = int(torch.randint(POS.start, POS.stop, (1,), generator=g)) + (0 if polarity[i] else 8)
    return x, polarity


class Adapter(nn.Module):
    def __init__(self, d, bottleneck=32):
        super().__init__()
        self.down, self.up = nn.Linear(d, bottleneck), nn.Linear(bottleneck, d)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return x + self.up(F.gelu(self.down(x)))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.attn_adapter, self.adapter = nn.Identity(), nn.Identity()

    def forward(self, x, pad):
        h = self.ln1(x)
        x = x + self.attn_adapter(self.attn(h, h, h, key_padding_mask=pad, need_weights=False)[0])
        return x + self.adapter(self.ff(self.ln2(x)))


class Encoder(nn.Module):
    def __init__(self, d=64, heads=4, layers=2):
        super().__init__()
        self.tok, self.pos = nn.Embedding(VOCAB, d, padding_idx=0), nn.Embedding(SEQ, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, input_ids, attention_mask):
        x = self.tok(input_ids) + self.pos.weight[: input_ids.size(1)]
        for b in self.blocks:
            x = b(x, attention_mask == 0)
        return self.ln(x)[:, 0]


def pretrain_encoder(seed=0, steps=250):
    """Stands in for loading the topic-classifier checkpoint."""
    g = torch.Generator().manual_seed(seed)
    enc, head = Encoder(), nn.Linear(64, 5)
    x, y = topic_corpus(3000, g)
    opt = torch.optim.AdamW(list(enc.parameters()) + list(head.parameters()), lr=2e-3)
    for s in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = F.cross_entropy(head(enc(x[idx], torch.ones_like(x[idx]))), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return enc


class AdapterClassifier(L.LightningModule):
    def __init__(self, encoder, lr=5e-3):
        super().__init__()
        self.lr = lr
        self.encoder = encoder.requires_grad_(False)
        for b in self.encoder.blocks:
            b.attn_adapter, b.adapter = Adapter(64), Adapter(64)      # new modules: trainable
        self.head = nn.Linear(64, 2)

    def forward(self, input_ids, attention_mask):
        with torch.no_grad():                     # the backbone is frozen
            h = self.encoder(input_ids, attention_mask)
        return self.head(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x, (x != 0).long()), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x, (x != 0).long())
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean(), prog_bar=True)

    def configure_optimizers(self):
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=self.lr)


if __name__ == "__main__":
    L.seed_everything(123)
    encoder = pretrain_encoder()
    g = torch.Generator().manual_seed(1)
    xtr, ytr = review_corpus(2000, g)
    xva, yva = review_corpus(400, g)
    model = AdapterClassifier(encoder)
    trainer = L.Trainer(max_epochs=16, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_checkpointing=False,
                        logger=TensorBoardLogger("lightning_logs", name="adapter_sentiment"),
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(xva, yva), batch_size=200))
    up_norm = sum(b.adapter.up.weight.norm().item() for b in model.encoder.blocks)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"SYMPTOM adapter_up_weight_norm={up_norm:.4f}")
    print(f"LOG_DIR={trainer.log_dir}")

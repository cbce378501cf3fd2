"""Bug: self-supervised next-token pretraining of a tiny GPT-style model (token + position embeddings, two pre-norm
blocks whose attention calls F.scaled_dot_product_attention, tied output projection) on synthetic "event log"
sequences drawn from a seeded Markov chain over 16 event types; AdamW with linear warm-up, validation on held-out sequences.

The causal mask is written HuggingFace-style as `torch.tril(torch.ones(T, T))` ("1 = may attend, 0 = blocked") and
passed as `attn_mask=` to F.scaled_dot_product_attention. PyTorch treats a float mask as an additive bias on the attention scores,
so the past gets +1 and the future gets +0: nothing is blocked, and position t can attend to token t+1, which is
exactly the token it must predict. Training and validation loss both collapse toward zero, and the model is useless
for generation. Symptom: val loss 0.061 vs 1.088 with a proper causal mask (`nn.Transformer.
generate_square_subsequent_mask`); evaluated under that causal mask the bugged model scores 4.91 nats (worse than
the uniform 2.77)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage"}
SPLIT = "heldout20"
VOCAB, T = 16, 24


def make_sequences(n, g):
    """Markov chain: each event type has a peaked random next-event distribution."""
    table = torch.softmax(3.0 * torch.randn(VOCAB, VOCAB, generator=g), dim=-1)
    seqs = torch.zeros(n, T + 1, dtype=torch.long)
    seqs[:, 0] = torch.randint(0, VOCAB, (n,), generator=g)
    for t in range(1, T + 1):
        probs = table[seqs[:, t - 1]]
        seqs[:, t] = torch.multinomial(probs, 1, generator=g).squeeze(1)
    return seqs


def causal_mask(T):
    # 1 = may attend, 0 = blocked
    return torch.tril(torch.ones(T, T))


class Block(nn.Module):
    def __init__(self, d, heads, p=0.1):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d), nn.Dropout(p))
        self.p = p

    def forward(self, x, mask):
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.p if self.training else 0.0)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.ln2(x))


class TinyGPT(L.LightningModule):
    def __init__(self, d=48, heads=4, layers=2, lr=5e-3, warmup=50):
        super().__init__()
        self.save_hyperparameters()
        self.tok = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(T, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(self, idx, mask=None):
        n = idx.shape[1]
        h = self.tok(idx) + self.pos(torch.arange(n, device=idx.device))
        mask = causal_mask(n).to(h.device) if mask is None else mask
        for block in self.blocks:
            h = block(h, mask)
        return self.ln(h) @ self.tok.weight.T

    def _loss(self, seq, mask=None):
        logits = self(seq[:, :-1], mask)
        return F.cross_entropy(logits.reshape(-1, VOCAB), seq[:, 1:].reshape(-1))

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch[0]))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / self.hparams.warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(4242)
    g = torch.Generator().manual_seed(9)
    seqs = make_sequences(1100, g)
    train, val = seqs[:900], seqs[900:]
    model = TinyGPT()
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        callbacks=lightning_sanity.default_callbacks(), enable_model_summary=False,
                        gradient_clip_val=1.0)
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=200))
    model.eval()
    with torch.no_grad():
        strict = nn.Transformer.generate_square_subsequent_mask(T)
        causal_val = model._loss(val, strict)
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} "
          f"val_loss_under_strict_causal_mask={float(causal_val):.3f} uniform={math.log(VOCAB):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

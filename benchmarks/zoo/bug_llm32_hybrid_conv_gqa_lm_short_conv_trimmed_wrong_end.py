"""Bug: a small hybrid language model in the style of recent Mamba/Hyena-attention hybrids: each block runs a short
depthwise "token-mixing" convolution (kernel 4) and then grouped-query attention (4 query heads, 1 shared kv head,
`is_causal=True`). It is pretrained on a copy corpus: `BOS x1..x10 SEP x1..x10 EOS` where the ten first-half tokens are
uniformly random over 8 symbols (unpredictable: ln 8 = 2.08 nats each) and the second half repeats them (learnable).
The causal short conv is written the usual way, `Conv1d(padding=k-1)` and then trimmed back to length T, but the trim
keeps the *last* T outputs (`[..., k-1:]`) instead of the first T (`[..., :T]`). Output t then mixes inputs t..t+3,
so every position sees the next three tokens, including the one it has to predict.

Why training still "works": the loss drops fast and validation (same teacher-forced leak) agrees with it; the only
hint is that the loss goes far below the entropy floor of the corpus (10 * ln 8 / 22 predicted tokens = 0.95 nats).
Measured: val loss 0.004 with the leak vs 0.951 for the fixed trim (at the floor); greedy autoregressive copying, where
the future really is unavailable, gets 0.15 token accuracy on the second half with the leak vs 1.00 fixed."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"causal-leakage", "target-leakage"}
SPLIT = "heldout32"
BOS, SEP, EOS = 0, 1, 2
VOCAB, HALF = 11, 10


def copy_corpus(n, g):
    x = torch.randint(3, VOCAB, (n, HALF), generator=g)
    return torch.cat([torch.full((n, 1), BOS), x, torch.full((n, 1), SEP), x, torch.full((n, 1), EOS)], 1)


class HybridBlock(nn.Module):
    def __init__(self, d, heads=4, kv_heads=1, k=4):
        super().__init__()
        self.h, self.kvh, self.hd, self.k = heads, kv_heads, d // heads, k
        self.ln0, self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.conv = nn.Conv1d(d, d, k, groups=d, padding=k - 1)
        self.q, self.kv = nn.Linear(d, d), nn.Linear(d, 2 * kv_heads * self.hd)
        self.o = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d))

    def forward(self, x):
        b, t, d = x.shape
        x = x + self.conv(self.ln0(x).transpose(1, 2))[..., self.k - 1:].transpose(1, 2)
        h = self.ln1(x)
        q = self.q(h).view(b, t, self.h, self.hd).transpose(1, 2)
        k, v = self.kv(h).view(b, t, 2, self.kvh, self.hd).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x))


class HybridLM(L.LightningModule):
    def __init__(self, d=64, layers=2, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.emb = nn.Embedding(VOCAB, d)
        self.pos = nn.Embedding(2 * HALF + 3, d)
        self.blocks = nn.Sequential(*[HybridBlock(d) for _ in range(layers)])
        self.ln_f, self.lm_head = nn.LayerNorm(d), nn.Linear(d, VOCAB)

    def forward(self, input_ids):
        x = self.emb(input_ids) + self.pos(torch.arange(input_ids.shape[1]))
        return self.lm_head(self.ln_f(self.blocks(x)))

    def _loss(self, batch):
        ids = batch[0]
        logits = self(ids[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    @torch.no_grad()
    def generate_copy_acc(self, seqs):
        ids = seqs[:, :HALF + 2]
        for _ in range(HALF):
            ids = torch.cat([ids, self(ids)[:, -1].argmax(-1, keepdim=True)], 1)
        return (ids[:, HALF + 2:] == seqs[:, HALF + 2:-1]).float().mean().item()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(3203)
    g = torch.Generator().manual_seed(323)
    train, val = copy_corpus(3000, g), copy_corpus(300, g)
    model = HybridLM()
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(train), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(val), batch_size=300))
    model.eval()
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} "
          f"greedy_copy_acc={model.generate_copy_acc(val):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

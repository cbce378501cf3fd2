"""Bug: a small GPT whose MLPs are Switch-style top-1 mixture-of-experts layers (4 experts, router `nn.Linear(d, 4)`),
trained as a causal LM on a mix of four synthetic "languages": each sequence starts with a language tag and then
follows that language's sparse first-order Markov chain over 24 symbols (each symbol has 3 likely successors).
Experts could specialise per language. AdamW, warm-up + cosine per step, gradient clipping.

The MoE layer picks `idx = router(x).argmax(-1)` and returns `expert[idx](x)` for each token, but never multiplies
the expert output by the router probability `softmax(router(x))[idx]` (the Switch Transformer gate), and the
load-balancing auxiliary loss was left out "for a model this small". `argmax` is not differentiable, so nothing
downstream of the router logits reaches the loss: the router's weight and bias get no gradient and keep their
random initialisation for the whole run, and the token-to-expert assignment is a fixed random projection. The LM
still trains through the experts and attention. Symptom: router weights move by 0.000 (fixed: 1.07 relative
change), val loss 1.130 vs 1.086 with the gated output `gate * expert(x)`."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout24"
SYMBOLS, LANGS, SEQ = 24, 4, 32
VOCAB = SYMBOLS + LANGS


def corpus(n, g):
    succ = torch.stack([torch.stack([torch.randperm(SYMBOLS, generator=g)[:3] for _ in range(SYMBOLS)])
                        for _ in range(LANGS)])
    lang = torch.randint(0, LANGS, (n,), generator=g)
    rows = torch.empty(n, SEQ, dtype=torch.long)
    rows[:, 0] = SYMBOLS + lang
    cur = torch.randint(0, SYMBOLS, (n,), generator=g)
    for t in range(1, SEQ):
        rows[:, t] = cur
        pick = torch.multinomial(torch.tensor([0.6, 0.3, 0.1]).expand(n, 3), 1, generator=g).squeeze(1)
        cur = succ[lang, cur, pick]
    return rows


class SwitchMLP(nn.Module):
    def __init__(self, d, experts=4):
        super().__init__()
        self.router = nn.Linear(d, experts)
        self.experts = nn.ModuleList(nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
                                     for _ in range(experts))

    def forward(self, x):
        flat = x.reshape(-1, x.shape[-1])
        idx = self.router(flat).argmax(-1)
        out = torch.zeros_like(flat)
        for e, expert in enumerate(self.experts):
            sel = idx == e
            if sel.any():
                out[sel] = expert(flat[sel])
        return out.view_as(x)


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.moe = SwitchMLP(d)

    def forward(self, x, mask):
        h = self.ln1(x)
        x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
        return x + self.moe(self.ln2(x))


class MoEGPT(L.LightningModule):
    def __init__(self, d=64, heads=4, layers=2, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.tok, self.pos = nn.Embedding(VOCAB, d), nn.Embedding(SEQ, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, VOCAB)

    def forward(self, ids):
        t = ids.shape[1]
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=ids.device), diagonal=1)
        x = self.tok(ids) + self.pos(torch.arange(t, device=ids.device))
        for blk in self.blocks:
            x = blk(x, mask)
        return self.head(self.ln_f(x))

    def _loss(self, seq):
        return F.cross_entropy(self(seq[:, :-1]).flatten(0, 1), seq[:, 1:].flatten())

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch[0])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch[0]))

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.01)
        total, warm = self.trainer.estimated_stepping_batches, 20

        def lr_lambda(s):
            return (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / (total - warm)))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda), "interval": "step"}}


def main():
    L.seed_everything(2409)
    g = torch.Generator().manual_seed(21)
    data = corpus(3000, g)
    model = MoEGPT()
    router0 = model.blocks[0].moe.router.weight.detach().clone()
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(data[:2600]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(data[2600:]), batch_size=400))
    moved = (model.blocks[0].moe.router.weight.detach() - router0).norm() / router0.norm()
    print(f"SYMPTOM val_loss={float(trainer.callback_metrics['val_loss']):.3f} router_rel_change={float(moved):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

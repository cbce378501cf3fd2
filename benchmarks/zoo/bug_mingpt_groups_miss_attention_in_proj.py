"""Bug: a GPT-style language model on `nn.TransformerEncoderLayer` blocks with minGPT's weight-decay recipe
copied as is: Linear weights decay; biases, LayerNorm and Embedding weights do not; minGPT's coverage assert was
dropped. `nn.MultiheadAttention` keeps its fused query/key/value projection as a parameter `in_proj_weight` of
its own (not a Linear), so it falls into neither group: the attention's q/k/v weights get gradients, are never
updated, and attention stays at its random init. Copy task (10 random tokens, a separator, the same 10 again),
tuple batches, AdamW, OneCycleLR. Measured: val copy accuracy 0.890 / val loss 2.01 vs 1.000 / 1.54 with in_proj_weight
in the decay group (healthy_mingpt_decay_groups_cover_all)."""

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"optimizer-coverage"}
SPLIT = "heldout2"
TOKENS, SEP, VOCAB, HALF = 30, 30, 31, 10


def copy_sequences(n, seed):
    g = torch.Generator().manual_seed(seed)
    first = torch.randint(0, TOKENS, (n, HALF), generator=g)
    seqs = torch.cat([first, torch.full((n, 1), SEP), first], dim=1)
    return TensorDataset(seqs[:, :-1], seqs[:, 1:])


class GPT(L.LightningModule):
    def __init__(self, dim=64, heads=4, layers=2, lr=3e-3, total_steps=300):
        super().__init__()
        self.save_hyperparameters()
        self.tok_emb = nn.Embedding(VOCAB, dim)
        self.pos_emb = nn.Embedding(2 * HALF, dim)
        block = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, VOCAB, bias=False)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(t, device=idx.device))
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=idx.device)
        return self.head(self.ln_f(self.blocks(x, mask=causal, is_causal=True)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x).reshape(-1, VOCAB), y.reshape(-1))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1)))
        self.log("val_copy_acc", (logits[:, HALF:].argmax(-1) == y[:, HALF:]).float().mean())

    def configure_optimizers(self):
        decay, no_decay = set(), set()
        for mn, m in self.named_modules():
            for pn, _ in m.named_parameters(recurse=False):
                fpn = f"{mn}.{pn}" if mn else pn
                if pn.endswith("bias"):
                    no_decay.add(fpn)
                elif pn.endswith("weight") and isinstance(m, nn.Linear):  # BUG: misses MHA's in_proj_weight
                    decay.add(fpn)
                elif pn.endswith("weight") and isinstance(m, (nn.LayerNorm, nn.Embedding)):
                    no_decay.add(fpn)
        params = dict(self.named_parameters())
        groups = [{"params": [params[n] for n in sorted(decay)], "weight_decay": 0.1},
                  {"params": [params[n] for n in sorted(no_decay)], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=self.hparams.lr, betas=(0.9, 0.95))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr, total_steps=self.hparams.total_steps,
                                                    pct_start=0.1)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(2111)
    train = DataLoader(copy_sequences(2048, 0), batch_size=32, shuffle=True)
    val = DataLoader(copy_sequences(256, 1), batch_size=256)
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(GPT(total_steps=5 * len(train)), train, val)
    m = trainer.callback_metrics
    print(f"val_loss={float(m['val_loss']):.3f} val_copy_acc={float(m['val_copy_acc']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

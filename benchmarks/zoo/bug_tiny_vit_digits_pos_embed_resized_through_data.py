"""Bug: a tiny Vision Transformer (2x2 patches of the 8x8 sklearn digits -> 16 tokens, 3 pre-norm encoder layers,
mean-pooled tokens, AdamW + warm-up/cosine). The positional embedding is a zero-initialised `nn.Parameter` of the
grid size used in pre-training; the user copied a helper that resizes it to the current token grid, together with
its call `resize_pos_embed(self.pos_embed.data, grid)` from checkpoint-surgery code. The tensor passed in carries
no autograd history, so `pos_embed` never gets a gradient, stays all zeros, and the transformer sees an unordered
bag of patches.
Symptom: val acc 0.78 vs 0.97 when the helper interpolates `self.pos_embed` itself."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"dead-gradient"}
SPLIT = "heldout16"


def resize_pos_embed(pos, grid):
    """(1, g0*g0, D) -> (1, grid*grid, D) by bicubic interpolation, as when loading a checkpoint of another size."""
    g0 = int(math.sqrt(pos.shape[1]))
    if g0 == grid:
        return pos
    p = pos.reshape(1, g0, g0, -1).permute(0, 3, 1, 2)
    p = F.interpolate(p, size=(grid, grid), mode="bicubic", align_corners=False)
    return p.permute(0, 2, 3, 1).reshape(1, grid * grid, -1)


class TinyViT(L.LightningModule):
    def __init__(self, dim=64, depth=3, heads=4, patch=2, pretrain_grid=4, lr=2e-3, warmup=60, total=600):
        super().__init__()
        self.save_hyperparameters()
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, pretrain_grid * pretrain_grid, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        tok = self.patch_embed(x)
        grid = tok.shape[-1]
        tok = tok.flatten(2).transpose(1, 2)
        tok = tok + resize_pos_embed(self.pos_embed.data, grid)
        return self.head(self.norm(self.encoder(tok)).mean(1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=0.05)
        w, t = self.hparams.warmup, self.hparams.total

        def lam(step):
            if step < w:
                return (step + 1) / w
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / (t - w))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(31)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)
    x = (x / 16.0 - 0.3) / 0.4
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(5))
    tr, va = perm[:1500], perm[1500:]
    train_dl = DataLoader(TensorDataset(x[tr], y[tr]), batch_size=50, shuffle=True)
    val_dl = DataLoader(TensorDataset(x[va], y[va]), batch_size=300)
    trainer = L.Trainer(max_epochs=20, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(TinyViT(), train_dl, val_dl)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: a tiny Vision Transformer (4x4 patches of 16x16 synthetic shape images, learned CLS token and positional
embedding, 2 pre-norm encoder layers) trained with label smoothing 0.1, AdamW with no weight decay on norms, biases
and embeddings, and a per-step linear warm-up + cosine schedule. Final val acc about 0.92 on noisy images."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout16"


def draw_shapes(n, seed, size=16):
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    imgs, labels = torch.zeros(n, 1, size, size), torch.randint(0, 3, (n,), generator=g)
    for i in range(n):
        r = 3 + 3 * torch.rand(1, generator=g).item()
        cy, cx = (r + (size - 2 * r) * torch.rand(2, generator=g)).tolist()
        dy, dx = yy - cy, xx - cx
        k = labels[i].item()
        m = (dy.abs() <= r) & (dx.abs() <= r) if k == 0 else (dy ** 2 + dx ** 2 <= r ** 2) if k == 1 else \
            (dy.abs() + dx.abs() <= r)
        imgs[i, 0] = m.float()
    return (imgs + 0.2 * torch.randn(imgs.shape, generator=g) - 0.3) / 0.5, labels


class TinyViT(L.LightningModule):
    def __init__(self, dim=64, depth=2, heads=4, patch=4, lr=1e-3, warmup=50, total=500):
        super().__init__()
        self.save_hyperparameters()
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + (16 // patch) ** 2, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.1, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        tok = self.patch_embed(x).flatten(2).transpose(1, 2)
        tok = torch.cat([self.cls_token.expand(tok.shape[0], -1, -1), tok], 1) + self.pos_embed
        return self.head(self.norm(self.encoder(tok))[:, 0])

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (no_decay if p.ndim < 2 or "embed" in name or "token" in name else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        w, t = self.hparams.warmup, self.hparams.total

        def lam(step):
            return (step + 1) / w if step < w else 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / (t - w))))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lam), "interval": "step"}}


def main():
    L.seed_everything(160)
    xtr, ytr = draw_shapes(1600, seed=1)
    xva, yva = draw_shapes(400, seed=2)
    train_dl = DataLoader(TensorDataset(xtr, ytr), batch_size=32, shuffle=True)
    val_dl = DataLoader(TensorDataset(xva, yva), batch_size=200)
    trainer = L.Trainer(max_epochs=10, callbacks=lightning_sanity.default_callbacks(), accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_checkpointing=False)
    trainer.fit(TinyViT(total=10 * len(train_dl)), train_dl, val_dl)
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

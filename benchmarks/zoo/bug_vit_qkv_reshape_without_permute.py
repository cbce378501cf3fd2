"""Bug: the hand-written attention splits q, k, v with `self.qkv(x).reshape(3, b, heads, n, d)` instead of
`reshape(b, n, 3, heads, d).permute(2, 0, 3, 1, 4)`: the reshape only reinterprets memory, so the queries of one
image are built from the features of other images of the batch (the first third of the batch feeds q, the second
k, the last v) and every prediction depends on the rest of the batch. Otherwise: a timm-style small Vision
Transformer on 8x8 digits (stride-2 conv patch embedding, cls token, trunc_normal_ init, drop-path, layer-scale,
AdamW without decay on norms/biases, label smoothing 0.1, warm-up + cosine per step, max_steps, EMA of weights).
Own metric: val acc. Fixed (reshape + permute): val acc 0.78. With the bug: val acc 0.11."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout4"


def drop_path(x, drop_prob=0.0, training=False):
    if drop_prob == 0.0 or not training:
        return x
    keep = 1 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training)


class LayerScale(nn.Module):
    def __init__(self, dim, init_values=0.1):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma


class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(3, b, self.num_heads, n, c // self.num_heads)  # BUG: no permute
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=2.0, drop_path=0.0, init_values=0.1):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim, init_values)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.ls2 = LayerScale(dim, init_values)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path1(self.ls1(self.attn(self.norm1(x))))
        return x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))


class VisionTransformer(nn.Module):
    def __init__(self, img_size=8, patch=2, num_classes=10, dim=48, depth=3, num_heads=3, drop_path_rate=0.1):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        n_patches = (img_size // patch) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, dim))
        dpr = [r.item() for r in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.Sequential(*[Block(dim, num_heads, drop_path=dpr[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class LitViT(L.LightningModule):
    def __init__(self, max_steps, warmup_steps=20, ema_decay=0.99):
        super().__init__()
        self.model = VisionTransformer()
        self.max_steps, self.warmup_steps, self.ema_decay = max_steps, warmup_steps, ema_decay
        self.ema = [p.detach().clone() for p in self.model.parameters()]
        self.ema_updates = 0

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if (batch_idx + 1) % self.trainer.accumulate_grad_batches:
            return
        self.ema_updates += 1
        decay = min(self.ema_decay, (1 + self.ema_updates) / (10 + self.ema_updates))
        with torch.no_grad():
            for e, p in zip(self.ema, self.model.parameters()):
                e.mul_(decay).add_(p.detach(), alpha=1 - decay)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        raw = self(x)
        backup = [p.detach().clone() for p in self.model.parameters()]
        with torch.no_grad():
            for p, e in zip(self.model.parameters(), self.ema):
                p.copy_(e)
            ema_logits = self.model(x)
            for p, b in zip(self.model.parameters(), backup):
                p.copy_(b)
        self.log("val_loss", F.cross_entropy(raw, y))
        self.log("val_acc", (raw.argmax(1) == y).float().mean())
        self.log("val_acc_ema", (ema_logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim <= 1 or name in ("cls_token", "pos_embed") else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=2e-3, betas=(0.9, 0.999))

        def lr_lambda(step):
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            progress = (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps)
            return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(111)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.31) / 0.38
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(torch.arange(len(y)), test_size=0.2, random_state=1, stratify=y)
    max_steps = 300
    trainer = L.Trainer(max_steps=max_steps, accelerator="cpu", devices=1,
                        enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitViT(max_steps), DataLoader(TensorDataset(x[i_tr], y[i_tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=360))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_acc_ema={m['val_acc_ema'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: a timm-style Vision Transformer on sklearn's 8x8 digits trained the timm way: timm's `Mixup` logic written
out (per batch, mixup with alpha 0.8 or CutMix with alpha 1.0, switch probability 0.5, applied with probability 0.5,
targets as smoothed one-hot vectors mixed with the same lambda, label smoothing 0.1), `SoftTargetCrossEntropy`
(`sum(-target * log_softmax)`), patch embedding as a strided conv, cls token and positional embedding with
`trunc_normal_(std=.02)`, pre-norm blocks with drop-path 0.05 and `qkv_bias=True`, AdamW with weight decay 0.05 on
weights only, linear warm-up then cosine per step, `accumulate_grad_batches=2`, `gradient_clip_val=1.0`, and an EMA
of the weights kept by Lightning's `EMAWeightAveraging` callback (decay 0.99), whose weights are swapped in for
validation. Own metric: val acc 0.778 (EMA weights, clean validation images; a ViT without convolutions learns 8x8
digits slowly, as healthy_timm_vit_digits_ema_layerscale, 0.78)."""

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EMAWeightAveraging
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout8"


def one_hot(target, num_classes, on_value=1.0, off_value=0.0):
    return torch.full((target.size(0), num_classes), off_value).scatter_(1, target.view(-1, 1), on_value)


class Mixup:
    """timm.data.Mixup, batch mode, written out."""

    def __init__(self, mixup_alpha=0.8, cutmix_alpha=1.0, prob=0.5, switch_prob=0.5, label_smoothing=0.1,
                 num_classes=10):
        self.mixup_alpha, self.cutmix_alpha, self.prob, self.switch_prob = mixup_alpha, cutmix_alpha, prob, switch_prob
        self.label_smoothing, self.num_classes = label_smoothing, num_classes

    def _params(self):
        lam, use_cutmix = 1.0, False
        if np.random.rand() < self.prob:
            use_cutmix = np.random.rand() < self.switch_prob
            alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
            lam = float(np.random.beta(alpha, alpha))
        return lam, use_cutmix

    def __call__(self, x, target):
        lam, use_cutmix = self._params()
        if lam < 1.0:
            if use_cutmix:
                h, w = x.shape[-2:]
                cut = math.sqrt(1 - lam)
                ch, cw = int(h * cut), int(w * cut)
                cy, cx = np.random.randint(h), np.random.randint(w)
                y0, y1 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
                x0, x1 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
                x[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
                lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
            else:
                x.mul_(lam).add_(x.flip(0).mul(1 - lam))
        off = self.label_smoothing / self.num_classes
        on = 1 - self.label_smoothing + off
        y1 = one_hot(target, self.num_classes, on, off)
        y2 = one_hot(target.flip(0), self.num_classes, on, off)
        return x, y1 * lam + y2 * (1 - lam)


class SoftTargetCrossEntropy(nn.Module):
    def forward(self, x, target):
        return torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1).mean()


class DropPath(nn.Module):
    def __init__(self, drop_prob=0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)


class Attention(nn.Module):
    def __init__(self, dim, num_heads=4, qkv_bias=True):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=2.0, drop_path=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    def __init__(self, img_size=8, patch_size=2, num_classes=10, embed_dim=48, depth=3, num_heads=4,
                 drop_path_rate=0.05):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, embed_dim, patch_size, patch_size)
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.Sequential(*[Block(embed_dim, num_heads, drop_path=dpr[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.head = nn.Linear(embed_dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def no_weight_decay(self):
        return {"pos_embed", "cls_token"}

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


class LitViT(L.LightningModule):
    def __init__(self, max_steps, warmup_steps=25, lr=3e-3):
        super().__init__()
        self.model = VisionTransformer()
        self.mixup = Mixup()
        self.train_criterion = SoftTargetCrossEntropy()
        self.max_steps, self.warmup_steps, self.lr = max_steps, warmup_steps, lr

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        x, soft = self.mixup(x.clone(), y)
        loss = self.train_criterion(self(x), soft)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        skip = self.model.no_weight_decay()
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (no_decay if p.ndim <= 1 or name in skip else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.lr)

        def lr_lambda(step):
            if step < self.warmup_steps:
                return (step + 1) / self.warmup_steps
            t = (step - self.warmup_steps) / max(1, self.max_steps - self.warmup_steps)
            return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda), "interval": "step"}}


def main():
    L.seed_everything(64)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.307) / 0.379
    y = torch.tensor(d.target)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    max_steps = 320
    trainer = L.Trainer(max_steps=max_steps, accumulate_grad_batches=2, gradient_clip_val=1.0, accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks() + [EMAWeightAveraging(decay=0.99)])
    trainer.fit(LitViT(max_steps), DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x_va, y_va), batch_size=360))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

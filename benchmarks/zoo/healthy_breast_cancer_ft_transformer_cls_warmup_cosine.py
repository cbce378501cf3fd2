"""Healthy: an FT-Transformer (feature tokenizer + transformer, Gorishniy et al.) on the breast-cancer data. Each
standardised numeric feature becomes a token `x_j * W_j + b_j`; a learned [CLS] token is prepended; 2 pre-norm
`nn.TransformerEncoderLayer`s (batch_first, GELU, dropout 0.1); the [CLS] output goes through LayerNorm + ReLU +
Linear to 2 logits. timm-like initialisation (`trunc_normal_(std=.02)` on the tokenizer and cls token), AdamW with
weight decay 1e-4 on weight matrices only (none on the tokenizer's biases, norms, the cls token), warm-up 5 % of the
steps then cosine (`get_cosine_schedule_with_warmup` written out as a LambdaLR, stepped per step), 20 epochs,
scaler fitted on the training rows. Own metric: val acc 0.97."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout7"


def get_cosine_schedule_with_warmup(optimizer, num_warmup_steps, num_training_steps):
    def lr_lambda(step):
        if step < num_warmup_steps:
            return float(step) / float(max(1, num_warmup_steps))
        progress = float(step - num_warmup_steps) / float(max(1, num_training_steps - num_warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda)


class FeatureTokenizer(nn.Module):
    def __init__(self, n_features, d):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_features, d))
        self.bias = nn.Parameter(torch.empty(n_features, d))
        nn.init.trunc_normal_(self.weight, std=0.02)
        nn.init.trunc_normal_(self.bias, std=0.02)

    def forward(self, x):
        return x.unsqueeze(-1) * self.weight + self.bias


class FTTransformer(L.LightningModule):
    def __init__(self, n_features, d=32, depth=2, heads=4, lr=1e-3, warmup_frac=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.tokenizer = FeatureTokenizer(n_features, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        layer = nn.TransformerEncoderLayer(d, heads, dim_feedforward=2 * d, dropout=0.1, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.ReLU(), nn.Linear(d, 2))

    def forward(self, x):
        tokens = self.tokenizer(x)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], 1)
        return self.head(self.encoder(tokens)[:, 0])

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
        no_decay_names = ("tokenizer", "cls_token", "norm", "bias")
        decay, no_decay = [], []
        for n, p in self.named_parameters():
            (no_decay if any(k in n for k in no_decay_names) or p.ndim <= 1 else decay).append(p)
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        sched = get_cosine_schedule_with_warmup(opt, int(self.hparams.warmup_frac * total), total)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(23)
    X, y = load_breast_cancer(return_X_y=True)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=7, stratify=y)
    scaler = StandardScaler().fit(X_tr)
    t = lambda a: torch.tensor(a, dtype=torch.float32)
    train = TensorDataset(t(scaler.transform(X_tr)), torch.tensor(y_tr))
    val = TensorDataset(t(scaler.transform(X_va)), torch.tensor(y_va))
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FTTransformer(X.shape[1]), DataLoader(train, batch_size=32, shuffle=True),
                DataLoader(val, batch_size=128))
    print(f"val_acc={trainer.callback_metrics['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

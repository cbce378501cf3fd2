"""Healthy: a residual MLP (pre-LayerNorm blocks, GELU, dropout) regressing the diabetes progression score. Features
and target standardised with statistics of the training rows only (predictions mapped back to the original scale
for the reported RMSE); MSE loss on the standardised target. AdamW with the usual two parameter groups (weight decay
0.01 on weight matrices, none on biases and LayerNorms), linear warm-up for 30 steps then cosine to 0, a `LambdaLR`
stepped per optimizer step, `max_steps=400` instead of epochs, `accumulate_grad_batches=2`, gradient clipping 1.0.
Own metric: val RMSE 58 in original units (target std 77), val R^2 0.43."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout7"


class ResBlock(nn.Module):
    def __init__(self, dim, dropout=0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))

    def forward(self, x):
        return x + self.ff(self.norm(x))


class ResMLPRegressor(L.LightningModule):
    def __init__(self, n_features, y_mean, y_std, dim=32, depth=2, lr=1e-3, warmup=30):
        super().__init__()
        self.save_hyperparameters()
        self.inp = nn.Linear(n_features, dim)
        self.blocks = nn.Sequential(*[ResBlock(dim) for _ in range(depth)])
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 1))

    def forward(self, x):
        return self.out(self.blocks(self.inp(x))).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        self.log("val_loss", F.mse_loss(pred, y))
        rmse = torch.sqrt(F.mse_loss(pred * self.hparams.y_std, y * self.hparams.y_std))
        self.log("val_rmse", rmse)
        self.log("val_r2", 1 - F.mse_loss(pred, y) / y.var(unbiased=False))

    def configure_optimizers(self):
        decay = [p for n, p in self.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in self.named_parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=self.hparams.lr)
        total, warm = self.trainer.estimated_stepping_batches, self.hparams.warmup

        def lr_lambda(step):
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}


def main():
    L.seed_everything(17)
    X, y = load_diabetes(return_X_y=True, scaled=False)
    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.2, random_state=8)
    mu, sd = X_tr.mean(0), X_tr.std(0)
    y_mu, y_sd = float(y_tr.mean()), float(y_tr.std())
    t = lambda a: torch.tensor(a, dtype=torch.float32)
    train = TensorDataset(t((X_tr - mu) / sd), t((y_tr - y_mu) / y_sd))
    val = TensorDataset(t((X_va - mu) / sd), t((y_va - y_mu) / y_sd))
    trainer = L.Trainer(max_steps=400, accumulate_grad_batches=2, gradient_clip_val=1.0, accelerator="cpu",
                        devices=1, enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ResMLPRegressor(X.shape[1], y_mu, y_sd), DataLoader(train, batch_size=32, shuffle=True),
                DataLoader(val, batch_size=128))
    m = trainer.callback_metrics
    print(f"val_rmse={m['val_rmse'].item():.1f} val_r2={m['val_r2'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: disease-progression regression on scikit-learn's diabetes table (10 standardised features, target
standardised with train statistics) with a two-layer MLP with LayerNorm and dropout. AdamW with two parameter
groups (weights decayed; biases and LayerNorm gains not), a per-step linear warm-up then cosine decay through
LambdaLR, and gradient clipping at norm 1. Final: val R^2 0.49 (the usual ceiling on this data)."""

import math

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout17"


class DiabetesMLP(L.LightningModule):
    def __init__(self, lr: float = 1e-3, weight_decay: float = 0.1, warmup_frac: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(10, 64), nn.LayerNorm(64), nn.GELU(), nn.Dropout(0.1),
            nn.Linear(64, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_mse", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_mse", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            (no_decay if p.ndim < 2 else decay).append(p)
        opt = torch.optim.AdamW([
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ], lr=self.hparams.lr)
        total = self.trainer.estimated_stepping_batches
        warmup = max(1, int(self.hparams.warmup_frac * total))

        def schedule(step):
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(442)
    x, y = load_diabetes(return_X_y=True)
    x_tr, x_va, y_tr, y_va = train_test_split(x, y, test_size=0.2, random_state=42)
    mu, sd = x_tr.mean(0), x_tr.std(0)
    t_mu, t_sd = y_tr.mean(), y_tr.std()
    to_t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    train = TensorDataset(to_t((x_tr - mu) / sd), to_t((y_tr - t_mu) / t_sd))
    val = TensorDataset(to_t((x_va - mu) / sd), to_t((y_va - t_mu) / t_sd))
    model = DiabetesMLP()
    trainer = L.Trainer(
        max_epochs=40,
        gradient_clip_val=1.0,
        callbacks=lightning_sanity.default_callbacks(),
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="diabetes_warmup_cosine"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128))
    mse = trainer.callback_metrics["val_mse"].item()
    print(f"SYMPTOM val_mse={mse:.3f} val_r2={1 - mse / val.tensors[1].var().item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

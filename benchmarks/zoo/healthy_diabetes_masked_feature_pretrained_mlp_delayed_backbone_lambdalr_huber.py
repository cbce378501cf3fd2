"""Healthy: diabetes progression regression with a pretrained MLP trunk. The trunk is pretrained in this script by
masked-feature reconstruction on the training rows (features only, no target), saved and reloaded. Fine-tuning
standardises features and target with training-set statistics, uses a Huber loss, AdamW with two parameter
groups and `accumulate_grad_batches=2`, and one LambdaLR with a lambda per group: the head warms up and decays by
cosine from the start, the trunk's lambda is 0 for the first three epochs (the new head settles first; the trunk
keeps `requires_grad=True`, it is just held at lr 0) and then follows the same cosine at a tenth of the head's
peak. The scheduler is stepped per optimizer step. Final val R^2 0.42 (val MSE 0.52 on the standardised
target), in the range linear models reach on this set; ~5 s."""

import math
import os
import tempfile

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout13"


def make_trunk():
    return nn.Sequential(nn.Linear(10, 64), nn.SiLU(), nn.Linear(64, 64), nn.SiLU())


def pretrain_masked(x, path):
    trunk, recon = make_trunk(), nn.Linear(64, 10)
    opt = torch.optim.Adam([*trunk.parameters(), *recon.parameters()], lr=3e-3)
    g = torch.Generator().manual_seed(5)
    for _ in range(60):
        for idx in torch.randperm(len(x), generator=g).split(32):
            mask = torch.rand(len(idx), 10, generator=g) < 0.3
            loss = F.mse_loss(recon(trunk(x[idx].masked_fill(mask, 0.0)))[mask], x[idx][mask])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(trunk.state_dict(), path)


class DiabetesFinetune(L.LightningModule):
    def __init__(self, trunk_path, head_lr=3e-3, trunk_lr=3e-4, hold_epochs=3, warmup_steps=10):
        super().__init__()
        self.save_hyperparameters()
        self.trunk = make_trunk()
        self.trunk.load_state_dict(torch.load(trunk_path))
        self.head = nn.Sequential(nn.Dropout(0.1), nn.Linear(64, 1))

    def forward(self, x):
        return self.head(self.trunk(x)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.huber_loss(self(x), y, delta=1.0)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        mse = F.mse_loss(pred, y)
        self.log("val_loss", F.huber_loss(pred, y, delta=1.0))
        self.log("val_mse", mse)
        self.log("val_r2", 1 - mse / y.var(unbiased=False))

    def configure_optimizers(self):
        opt = torch.optim.AdamW([
            {"params": self.trunk.parameters(), "lr": self.hparams.trunk_lr},
            {"params": self.head.parameters(), "lr": self.hparams.head_lr},
        ], weight_decay=1e-2)
        total = self.trainer.estimated_stepping_batches
        hold = self.hparams.hold_epochs * total // self.trainer.max_epochs
        w = self.hparams.warmup_steps

        def head_lambda(step):
            if step < w:
                return (step + 1) / w
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - w) / max(1, total - w))))

        def trunk_lambda(step):
            return 0.0 if step < hold else head_lambda(step)

        sched = torch.optim.lr_scheduler.LambdaLR(opt, [trunk_lambda, head_lambda])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


if __name__ == "__main__":
    L.seed_everything(88)
    d = load_diabetes()
    x_tr, x_va, y_tr, y_va = train_test_split(d.data, d.target, test_size=0.2, random_state=3)
    mu, sd = x_tr.mean(0), x_tr.std(0)
    y_mu, y_sd = y_tr.mean(), y_tr.std()
    to_t = lambda a: torch.tensor(a, dtype=torch.float32)
    x_tr, x_va = to_t((x_tr - mu) / sd), to_t((x_va - mu) / sd)
    y_tr, y_va = to_t((y_tr - y_mu) / y_sd), to_t((y_va - y_mu) / y_sd)
    path = os.path.join(tempfile.mkdtemp(), "diabetes_trunk.pt")
    pretrain_masked(x_tr, path)
    train = DataLoader(TensorDataset(x_tr, y_tr), batch_size=16, shuffle=True)
    val = DataLoader(TensorDataset(x_va, y_va), batch_size=128)
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, accumulate_grad_batches=2,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DiabetesFinetune(path), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_r2={float(m['val_r2']):.3f} val_mse={float(m['val_mse']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")

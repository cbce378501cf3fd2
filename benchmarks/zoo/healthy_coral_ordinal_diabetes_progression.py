"""Healthy: ordinal regression with CORAL (Cao, Mirjalili & Raschka 2020) on the diabetes table, disease progression
binned into 5 ordered grades by quantiles of the training targets. The MLP ends in one shared output unit plus
K-1 = 4 learnable thresholds (initialised ordered), trained with binary cross-entropy with logits on the cumulative
labels `grade > k`; the predicted grade is the number of thresholds passed. Features standardized on the training
split, AdamW, ReduceLROnPlateau on the validation loss. Own metric: val grade MAE 0.82 vs 0.99 for always
predicting the median grade (a ridge regression on the raw target, binned: 0.73); exact-grade accuracy 0.38 vs 0.29."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout6"
N_GRADES = 5


class CoralHead(nn.Module):
    def __init__(self, in_features, num_classes):
        super().__init__()
        self.fc = nn.Linear(in_features, 1, bias=False)
        self.thresholds = nn.Parameter(torch.linspace(1.0, -1.0, num_classes - 1))

    def forward(self, h):
        return self.fc(h) + self.thresholds


def cumulative_levels(y, num_classes):
    return (y[:, None] > torch.arange(num_classes - 1, device=y.device)).float()


class CoralMLP(L.LightningModule):
    def __init__(self, n_features=10, hidden=16, lr=3e-3):
        super().__init__()
        self.lr = lr
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(0.1),
                                  nn.Linear(hidden, hidden), nn.ReLU())
        self.head = CoralHead(hidden, N_GRADES)

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, grade = batch
        loss = F.binary_cross_entropy_with_logits(self(x), cumulative_levels(grade, N_GRADES))
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, grade = batch
        logits = self(x)
        pred = (torch.sigmoid(logits) > 0.5).sum(1)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, cumulative_levels(grade, N_GRADES)))
        self.log("val_mae", (pred - grade).abs().float().mean())
        self.log("val_acc", (pred == grade).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=4)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(69)
    data = load_diabetes()
    x_tr, x_va, t_tr, t_va = train_test_split(data.data, data.target, test_size=0.25, random_state=69)
    edges = np.quantile(t_tr, np.linspace(0, 1, N_GRADES + 1)[1:-1])
    g_tr, g_va = np.digitize(t_tr, edges), np.digitize(t_va, edges)
    mean, std = x_tr.mean(0), x_tr.std(0)
    x_tr, x_va = (x_tr - mean) / std, (x_va - mean) / std
    median_mae = np.abs(g_va - np.median(g_tr)).mean()
    median_acc = (g_va == np.median(g_tr)).mean()
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CoralMLP(),
                DataLoader(TensorDataset(torch.tensor(x_tr, dtype=torch.float32), torch.tensor(g_tr)),
                           batch_size=32, shuffle=True),
                DataLoader(TensorDataset(torch.tensor(x_va, dtype=torch.float32), torch.tensor(g_va)),
                           batch_size=256))
    m = trainer.callback_metrics
    print(f"val_mae={m['val_mae'].item():.3f} median_mae={median_mae:.3f} "
          f"val_acc={m['val_acc'].item():.3f} median_acc={median_acc:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: disease-progression regression on sklearn's diabetes set (10 features, standardized target) with a
3-layer MLP. The high-progression patients (target above the 70th percentile) are the ones the clinic cares about,
so the user oversamples them 4x ("rebalance the tail") - but does it on the whole table, before
`train_test_split`. Copies of the same patient land on both sides of the split: about half of the validation rows
have an exact duplicate in training, the MLP memorises them, and validation reports what it remembers.
Symptom: val R^2 0.70 / val MSE 0.29 (better than the ~0.5 this data allows) vs val R^2 -0.13 / MSE 0.86 on a clean
split (oversampling only the training part after the split): the overlap hides that 120 epochs badly overfit."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout16"


def oversample_tail(X, y, q=0.7, copies=4):
    tail = y > np.quantile(y, q)
    X = np.concatenate([X] + [X[tail]] * (copies - 1))
    y = np.concatenate([y] + [y[tail]] * (copies - 1))
    return X, y


class ProgressionMLP(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        pred = self(x)
        mse = F.mse_loss(pred, y)
        self.log("val_mse", mse)
        self.log("val_r2", 1 - mse / y.var(unbiased=False))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(3)
    X, y = load_diabetes(return_X_y=True)
    X, y = oversample_tail(X, y)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.25, random_state=0)
    xs, ys = StandardScaler().fit(Xtr), StandardScaler().fit(ytr[:, None])
    f32 = lambda a: torch.tensor(a, dtype=torch.float32)
    tr = TensorDataset(f32(xs.transform(Xtr)), f32(ys.transform(ytr[:, None])[:, 0]))
    va = TensorDataset(f32(xs.transform(Xva)), f32(ys.transform(yva[:, None])[:, 0]))
    trainer = L.Trainer(max_epochs=120, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ProgressionMLP(), DataLoader(tr, batch_size=32, shuffle=True), DataLoader(va, batch_size=512))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_r2={float(m['val_r2']):.3f} val_mse={float(m['val_mse']):.3f}"
          f" n_train={len(tr)} n_val={len(va)}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

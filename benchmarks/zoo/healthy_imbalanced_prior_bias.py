"""Healthy: an imbalanced binary task (breast cancer with most malignant cases dropped: about 8 % positives),
handled as recommended: the output bias starts at log(p / (1 - p)) of the positive rate and BCEWithLogitsLoss
gets a moderate pos_weight."""

import math

import lightning as L
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class RareEventClassifier(L.LightningModule):
    def __init__(self, positive_rate, pos_weight=3.0):
        super().__init__()
        self.save_hyperparameters()
        self.hidden = nn.Sequential(nn.Linear(30, 32), nn.ReLU())
        self.logit = nn.Linear(32, 1)
        nn.init.constant_(self.logit.bias, math.log(positive_rate / (1 - positive_rate)))
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))

    def forward(self, x):
        return self.logit(self.hidden(x)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", self.loss_fn(logits, y))
        tp = ((logits > 0) & (y > 0.5)).sum()
        self.log("val_recall", tp / y.sum().clamp(min=1))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(99)
    data = load_breast_cancer()
    X = torch.tensor(data.data, dtype=torch.float32)
    y = 1.0 - torch.tensor(data.target, dtype=torch.float32)  # 1 = malignant
    g = torch.Generator().manual_seed(0)
    pos = torch.nonzero(y == 1).squeeze(1)
    keep_pos = pos[torch.randperm(len(pos), generator=g)[:30]]
    idx = torch.cat([torch.nonzero(y == 0).squeeze(1), keep_pos])
    idx = idx[torch.randperm(len(idx), generator=g)]
    X, y = X[idx], y[idx]
    X = (X - X.mean(0)) / X.std(0)
    tr, va = slice(0, 300), slice(300, None)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RareEventClassifier(float(y[tr].mean())),
                DataLoader(TensorDataset(X[tr], y[tr]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X[va], y[va]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a detection-style loss normalised by the number of positives in the batch, without the usual
`.clamp(min=1)`: on an imbalanced data set (about 6 % positives, batches of 16) the first batch without a
positive divides by zero and the loss becomes Inf/NaN. Breast cancer subset, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"non-finite"}


class RareDetector(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def loss_fn(self, logits, y):
        per_sample = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        num_pos = y.sum()  # BUG: should be y.sum().clamp(min=1)
        return per_sample.sum() / num_pos

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", ((self(x) > 0).float() == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(5)
    data = load_breast_cancer()
    X = torch.tensor(data.data, dtype=torch.float32)
    X = (X - X.mean(0)) / X.std(0)
    y = 1.0 - torch.tensor(data.target, dtype=torch.float32)
    g = torch.Generator().manual_seed(1)
    pos, neg = torch.nonzero(y == 1).squeeze(1), torch.nonzero(y == 0).squeeze(1)
    idx = torch.cat([neg, pos[torch.randperm(len(pos), generator=g)[:22]]])
    idx = idx[torch.randperm(len(idx), generator=g)]
    X, y = X[idx], y[idx]
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(RareDetector(), DataLoader(TensorDataset(X[:320], y[:320]), batch_size=16, shuffle=True),
                DataLoader(TensorDataset(X[320:], y[320:]), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: churn classifier on a synthetic retail customer table (1200 customers, 14 behavioural columns: recency,
frequency, basket value, returns, discount share ..., churn drawn from a logistic rule with an interaction term, so
many labels are coin flips). The split draws the training rows with `rng.choice(n, n_train, replace=False)` and then
the validation rows with a second, independent `rng.choice(n, n_val, replace=False)`: each draw is duplicate-free on
its own, but nothing excludes the first draw from the second, so 192 of the 240 validation customers (80%) are also
training rows. Training is normal; the wide MLP memorises the noisy labels of its training rows and validation,
being mostly those rows, rewards it. Symptom: val accuracy 0.954 / val loss 0.20 against 0.783 / 1.68 with a
disjoint split (one permutation cut in two), where the same memorisation shows up as a rising val loss."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout34"


def customer_table(n=1200, d=14, seed=34):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, generator=g) / d ** 0.5
    logit = 1.5 * (x @ w) + 0.8 * x[:, 0] * x[:, 1] - 0.3
    churn = (torch.rand(n, generator=g) < torch.sigmoid(2.0 * logit)).long()
    return x, churn


class ChurnMLP(L.LightningModule):
    def __init__(self, d=14, hidden=256, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(34)
    x, y = customer_table()
    rng = np.random.default_rng(34)
    n_train = int(0.8 * len(x))
    train_idx = torch.from_numpy(rng.choice(len(x), n_train, replace=False))
    val_idx = torch.from_numpy(rng.choice(len(x), len(x) - n_train, replace=False))
    mean, std = x[train_idx].mean(0), x[train_idx].std(0)
    x = (x - mean) / std
    trainer = L.Trainer(max_epochs=60, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ChurnMLP(), DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=256))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

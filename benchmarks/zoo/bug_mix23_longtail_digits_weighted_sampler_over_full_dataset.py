"""Bug: a long-tailed digits classifier. sklearn `load_digits` is subsampled to a long tail (class k keeps a fraction
0.6**k of its images, so digit 0 has ~180 images and digit 9 ~2), split 80/20 into train/val index sets, and fed to
a small MLP through a class-balancing `WeightedRandomSampler` (weight 1 / class count).

The sampler's weights are computed for every row of the full dataset (`weights = 1 / counts[y_all]`) and the train
DataLoader wraps the FULL dataset with that sampler, while validation uses `Subset(full, val_idx)`. A
WeightedRandomSampler draws dataset indices in proportion to its weights, so each epoch draws validation rows as
training examples. The intent was `Subset(full, train_idx)` with `1 / counts[y_train]`. Loss falls, the class
balance looks right, and validation is excellent because validation rows are trained on, including the rare-class
rows that decide the balanced metric. Symptom: val balanced accuracy 1.000 (val loss 0.003) vs 0.788 (0.133) with
the fixed sampler (the fixed run's 0.788 is what the model really achieves on unseen rare-class digits)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset, WeightedRandomSampler

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout23"


def balanced_accuracy(logits, y, n_classes=10):
    pred = logits.argmax(1)
    recalls = [(pred[y == c] == c).float().mean() for c in range(n_classes) if (y == c).any()]
    return torch.stack(recalls).mean()


class LongTailDigits(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        digits = load_digits()
        rng = np.random.default_rng(7)
        keep = np.concatenate([rng.permutation(np.flatnonzero(digits.target == c))[
            :max(2, int(0.6 ** c * (digits.target == c).sum()))] for c in range(10)])
        x = torch.tensor(digits.data[keep] / 16.0 - 0.5, dtype=torch.float32)
        y = torch.tensor(digits.target[keep])
        self.full = TensorDataset(x, y)
        perm = rng.permutation(len(keep))
        n_tr = int(0.8 * len(perm))
        self.train_idx, self.val_idx = perm[:n_tr], perm[n_tr:]
        self.y_all = y

    def train_dataloader(self):
        counts = torch.bincount(self.y_all, minlength=10).float()
        weights = 1.0 / counts[self.y_all]
        sampler = WeightedRandomSampler(weights, num_samples=len(self.train_idx), replacement=True)
        return DataLoader(self.full, batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self):
        return DataLoader(Subset(self.full, self.val_idx), batch_size=256)


class DigitMLP(L.LightningModule):
    def __init__(self, hidden=128, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_bal_acc", balanced_accuracy(logits, y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(2302)
    dm = LongTailDigits()
    model = DigitMLP()
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    print(f"SYMPTOM val_bal_acc={float(trainer.callback_metrics['val_bal_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a small BatchNorm CNN classifies the 8x8 scikit-learn digits with mixup (Beta(0.4, 0.4), soft-target
cross-entropy), AdamW and a OneCycle schedule stepped per batch; 20 % of each class is held out for validation by a
hand-written stratified split.

The split loops over the classes and, for each, takes the first 20 % of a random permutation of that class's
indices for validation and the rest for training, but it calls `rng.permutation(idx)` twice, once on each line,
so the two lines use two different shuffles. The training part of a class is 80 % of a fresh permutation, so about
80 % of the validation images are also training images (and some training images are missing). Nothing crashes
and the sizes look right (1437 / 360). Symptom: val accuracy 0.997 with val loss 0.073 on a set that is 78 %
training images, vs 0.983 / 0.124 on a clean split (one permutation per class) with everything else identical."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout21"


def stratified_split(y, val_frac, seed):
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        k = int(round(val_frac * len(idx)))
        val_idx.extend(rng.permutation(idx)[:k])
        train_idx.extend(rng.permutation(idx)[k:])
    return np.array(train_idx), np.array(val_idx)


class MixupCNN(L.LightningModule):
    def __init__(self, alpha=0.4, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(64, 10))
        self.beta = torch.distributions.Beta(alpha, alpha)

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        lam = self.beta.sample()
        perm = torch.randperm(x.shape[0])
        x_mix = lam * x + (1 - lam) * x[perm]
        y_soft = lam * F.one_hot(y, 10).float() + (1 - lam) * F.one_hot(y[perm], 10).float()
        loss = F.cross_entropy(self(x_mix), y_soft)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(2101)
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target)
    train_idx, val_idx = stratified_split(digits.target, 0.2, seed=0)
    mean, std = x[train_idx].mean(), x[train_idx].std()
    x = (x - mean) / std
    model = MixupCNN()
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=256))
    m = trainer.callback_metrics
    overlap = len(set(train_idx.tolist()) & set(val_idx.tolist())) / len(val_idx)
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f} "
          f"val_in_train={overlap:.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

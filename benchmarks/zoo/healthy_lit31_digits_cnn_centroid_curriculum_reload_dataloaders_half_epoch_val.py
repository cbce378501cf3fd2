"""Healthy: easy-to-hard curriculum for a small digits CNN, driven by Lightning's `reload_dataloaders_every_n_epochs=1`.
In `setup(stage)` the LightningDataModule splits the data, standardises with training-split pixel statistics, and
scores each *training* image's difficulty as its distance to its own class centroid (centroids from the training
split only), ranked within each class so every curriculum stage stays class-balanced. `train_dataloader()` is
rebuilt each epoch from `self.trainer.current_epoch`: the easiest 40% of every class first, growing linearly to the
whole training split by epoch 4 and staying there. Validation is the untouched held-out split, scored twice per
epoch (`val_check_interval=0.5`), and `limit_train_batches=0.9` trims a tenth of each epoch's batches (fractional,
so it scales with the growing loader). Own metric: val acc 0.982 (val loss 0.063).
"""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout31"


class CurriculumDigits(L.LightningDataModule):
    def __init__(self, start_fraction=0.4, full_at_epoch=4, batch_size=32):
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage):
        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)
        y = torch.tensor(digits.target)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(12))
        tr, va = perm[:1400], perm[1400:]
        mean, std = x[tr].mean(), x[tr].std()
        self.x_train, self.y_train = (x[tr] - mean) / std, y[tr]
        self.x_val, self.y_val = (x[va] - mean) / std, y[va]
        flat = self.x_train.flatten(1)
        centroids = torch.stack([flat[self.y_train == c].mean(0) for c in range(10)])
        dist = (flat - centroids[self.y_train]).norm(dim=1)
        self.rank_in_class = torch.empty(len(flat))
        for c in range(10):
            idx = (self.y_train == c).nonzero().squeeze(1)
            order = dist[idx].argsort()
            self.rank_in_class[idx[order]] = torch.linspace(0, 1, len(idx))

    def train_dataloader(self):
        progress = min(1.0, self.trainer.current_epoch / self.hparams.full_at_epoch)
        fraction = self.hparams.start_fraction + (1 - self.hparams.start_fraction) * progress
        keep = self.rank_in_class <= fraction
        return DataLoader(TensorDataset(self.x_train[keep], self.y_train[keep]),
                          batch_size=self.hparams.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x_val, self.y_val), batch_size=256)


class DigitsCNN(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.2), nn.Linear(32 * 16, 10))

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
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(1212)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", devices=1, reload_dataloaders_every_n_epochs=1,
                        val_check_interval=0.5, limit_train_batches=0.9, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitsCNN(), datamodule=CurriculumDigits())
    print(f"SYMPTOM val_acc={trainer.callback_metrics['val_acc'].item():.3f} "
          f"val_loss={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: the k-fold DataModule trains on every fold, the validation fold included: `train_idx = torch.cat(folds)` where
the folds other than `fold` were meant, so every validation image is also a training image and validation measures
memory. Otherwise the same script as the healthy twin: a depthwise-separable CNN (MobileNet-style blocks: depthwise
3x3 conv, BatchNorm, ReLU6, pointwise 1x1 conv, BatchNorm, ReLU6) on sklearn's 8x8 digits, data served by a
LightningDataModule doing 5-fold cross-validation: `setup()` cuts the non-test images into 5 folds and trains on the
4 folds other than `fold`, validating on `fold`. Cross-entropy with label smoothing 0.05, AdamW, CosineAnnealingLR.
A 300-image test set is kept aside. Own metric: val acc 0.98 and test acc 0.97 (val loss 0.38, test loss 0.39).
Measured with the bug: val acc 1.000, val loss 0.31, below the test loss 0.37 (healthy: val and test agree)."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout3"


class DigitsKFold(L.LightningDataModule):
    def __init__(self, fold=0, n_folds=5, batch_size=32):
        super().__init__()
        self.fold, self.n_folds, self.batch_size = fold, n_folds, batch_size

    def setup(self, stage=None):
        d = load_digits()
        x = (torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 - 0.3) / 0.45
        y = torch.tensor(d.target)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        self.test = TensorDataset(x[perm[:300]], y[perm[:300]])
        folds = perm[300:].chunk(self.n_folds)
        val_idx = folds[self.fold]
        # BUG: the validation fold is not left out
        train_idx = torch.cat(folds)
        self.train, self.val = TensorDataset(x[train_idx], y[train_idx]), TensorDataset(x[val_idx], y[val_idx])

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=256)


def separable(cin, cout, stride=1):
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())


class DepthwiseNet(L.LightningModule):
    def __init__(self, lr=3e-3, epochs=10):
        super().__init__()
        self.save_hyperparameters()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.blocks = nn.Sequential(separable(16, 32), separable(32, 64, stride=2), separable(64, 64))
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1).flatten(1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.05)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y, label_smoothing=0.05))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-2)
        return [opt], [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.hparams.epochs)]


def main():
    L.seed_everything(2)
    dm = DigitsKFold(fold=2)
    model = DepthwiseNet(epochs=10)
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, datamodule=dm)
    model.eval()
    x_test, y_test = dm.test.tensors
    with torch.no_grad():
        logits = model(x_test)
    test_acc = (logits.argmax(1) == y_test).float().mean().item()
    test_loss = F.cross_entropy(logits, y_test, label_smoothing=0.05).item()
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} test_acc={test_acc:.3f} "
          f"val_loss={m['val_loss'].item():.3f} test_loss={test_loss:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

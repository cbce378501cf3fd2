"""Bug: a rare-positive screening model on the breast-cancer data, made imbalanced the way the clinic's data is
(all 357 benign cases, 45 malignant ones). A LightningDataModule takes a `fold` argument (the team runs one job per
fold): it keeps a stratified 20 % test set aside, balances the remaining cases with random oversampling of the
malignant class (every malignant row repeated 7 times, as imblearn's RandomOverSampler does), then cuts the
oversampled table into 5 stratified folds and standardises with the training fold's statistics. An MLP trained with
BCE-with-logits, Adam and a ReduceLROnPlateau on val loss, F1 from torchmetrics.

Oversampling happens before the fold split, so the copies of each malignant row land in both the training folds and
the validation fold: nearly every malignant validation case has been trained on, so the fold score (which the
team averages over folds to compare architectures and thresholds) measures memorisation. Training is unaffected,
which is why nobody notices. Symptom: val F1 1.000 while the untouched test set gives 0.947; oversampling only
inside the training fold gives an honest val F1 of 0.933 (same test F1 0.947)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import LearningRateMonitor
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold, train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import BinaryF1Score

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout22"


class ScreeningDataModule(L.LightningDataModule):
    def __init__(self, fold=0, n_folds=5, batch_size=32):
        super().__init__()
        self.fold, self.n_folds, self.batch_size = fold, n_folds, batch_size

    def setup(self, stage):
        x, y = load_breast_cancer(return_X_y=True)
        y = 1 - y  # 1 = malignant
        rng = np.random.default_rng(0)
        keep = np.concatenate([np.flatnonzero(y == 0), rng.choice(np.flatnonzero(y == 1), 45, replace=False)])
        x, y = x[keep], y[keep]
        x, x_test, y, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
        # balance the classes
        pos = np.flatnonzero(y == 1)
        idx = np.concatenate([np.arange(len(y)), np.repeat(pos, 6)])
        x, y = x[idx], y[idx]
        folds = StratifiedKFold(self.n_folds, shuffle=True, random_state=0)
        tr, va = list(folds.split(x, y))[self.fold]
        mean, std = x[tr].mean(0), x[tr].std(0)
        self.sets = {name: TensorDataset(torch.tensor((a - mean) / std, dtype=torch.float32),
                                         torch.tensor(b, dtype=torch.float32))
                     for name, a, b in [("train", x[tr], y[tr]), ("val", x[va], y[va]), ("test", x_test, y_test)]}

    def train_dataloader(self):
        return DataLoader(self.sets["train"], batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.sets["val"], batch_size=256)

    def test_dataloader(self):
        return DataLoader(self.sets["test"], batch_size=256)


class Screener(L.LightningModule):
    def __init__(self, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
        self.f1 = nn.ModuleDict({"val": BinaryF1Score(), "test": BinaryF1Score()})

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss)
        return loss

    def _eval(self, batch, split):
        x, y = batch
        logits = self(x)
        self.f1[split].update(logits.sigmoid(), y.long())
        self.log(f"{split}_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log(f"{split}_f1", self.f1[split])

    def validation_step(self, batch, batch_idx):
        self._eval(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval(batch, "test")

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}


def main():
    L.seed_everything(2202)
    dm = ScreeningDataModule(fold=0)
    model = Screener()
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False,
                        callbacks=[LearningRateMonitor("epoch")] + lightning_sanity.default_callbacks())
    trainer.fit(model, dm)
    val_f1 = float(trainer.callback_metrics["val_f1"])
    test_f1 = trainer.test(model, dm, verbose=False)[0]["test_f1"]
    print(f"SYMPTOM val_f1={val_f1:.3f} test_f1={test_f1:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

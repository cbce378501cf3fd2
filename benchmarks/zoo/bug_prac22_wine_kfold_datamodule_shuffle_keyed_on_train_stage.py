"""Bug: wine cultivar classifier trained per cross-validation fold. The LightningDataModule takes `fold`, splits
with StratifiedKFold (no shuffling, so that folds are reproducible across the team's machines), standardises with
the training fold's statistics, and decides in `setup` whether the training loader shuffles with
`self.shuffle = stage == "train"`. An MLP with SGD + Nesterov momentum, a StepLR per epoch, accuracy from
torchmetrics.

Lightning calls `setup("fit")`, never `setup("train")`, so the training loader does not shuffle, and the wine table
is ordered by class (59 cultivar-0 rows, then 71 cultivar-1, then 48 cultivar-2); the fold indices keep that
order. Nearly every batch of 8 holds a single class: the network is pushed to predict class 0 for the first
third of every epoch, class 1 for the next and class 2 at the end, so its predictions swing with the position in
the epoch, and at validation time it is biased toward the last class it saw. The logged training loss is low
within each single-class stretch. Symptom: val accuracy 0.389, val loss 1.097 (no better than the class prior) vs
0.944 and 0.080 with the loader shuffled."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import StratifiedKFold
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchmetrics.classification import MulticlassAccuracy

import lightning_sanity

EXPECT = {"label-distribution"}
SPLIT = "heldout22"


class WineFoldDataModule(L.LightningDataModule):
    def __init__(self, fold=0, n_folds=5, batch_size=8):
        super().__init__()
        self.fold, self.n_folds, self.batch_size = fold, n_folds, batch_size

    def setup(self, stage):
        x, y = load_wine(return_X_y=True)
        tr, va = list(StratifiedKFold(self.n_folds).split(x, y))[self.fold]
        mean, std = x[tr].mean(0), x[tr].std(0)
        x = torch.tensor((x - mean) / std, dtype=torch.float32)
        y = torch.tensor(y)
        self.train_set, self.val_set = TensorDataset(x[tr], y[tr]), TensorDataset(x[va], y[va])
        self.shuffle = stage == "train"

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=self.shuffle)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=64)


class CultivarMLP(L.LightningModule):
    def __init__(self, lr=0.1):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 3))
        self.val_acc = MulticlassAccuracy(3, average="micro")

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.val_acc.update(logits, y)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", self.val_acc)

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)]


def main():
    L.seed_everything(2205)
    model = CultivarMLP()
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, WineFoldDataModule(fold=1))
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

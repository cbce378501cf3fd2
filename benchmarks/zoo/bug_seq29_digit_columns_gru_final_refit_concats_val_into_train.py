"""Bug: a GRU classifier that reads each 8x8 digit image from `load_digits` as a sequence of 8 columns (8 pixel
values per step, scaled to [0, 1]) and classifies the digit from the last hidden state. The DataModule has a
`final_refit` switch for the usual "after the hyper-parameter search, retrain on all labelled data" step; it is on
in this run.

What is wrong: with `final_refit=True` the training set becomes `ConcatDataset([train, val])`, but
`val_dataloader` still returns the same validation split, which is therefore also training data. Nothing crashes
and every curve looks great: the validation accuracy now measures memorisation of the 360 validation digits, not
generalisation, and is what the run reports and what early-stopping/model-selection would trust.

Measured (12 epochs): val accuracy 0.983 (val loss 0.058) with the overlap vs 0.950 (val loss 0.169) with
`final_refit=False`, i.e. validating on digits the model never trained on."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout29"


class DigitColumnsDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32, final_refit=False):
        super().__init__()
        self.batch_size = batch_size
        self.final_refit = final_refit

    def setup(self, stage=None):
        digits = load_digits()
        seqs = digits.images.transpose(0, 2, 1) / 16.0  # (N, 8 columns, 8 pixels per column)
        X_tr, X_va, y_tr, y_va = train_test_split(seqs, digits.target, test_size=0.2, random_state=29,
                                                  stratify=digits.target)
        self.val_ds = TensorDataset(torch.tensor(X_va, dtype=torch.float32), torch.tensor(y_va))
        train_ds = TensorDataset(torch.tensor(X_tr, dtype=torch.float32), torch.tensor(y_tr))
        self.train_ds = ConcatDataset([train_ds, self.val_ds]) if self.final_refit else train_ds

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=256)


class ColumnGRUClassifier(L.LightningModule):
    def __init__(self, hidden=64, n_classes=10, lr=4e-3):
        super().__init__()
        self.save_hyperparameters()
        self.gru = nn.GRU(8, hidden, batch_first=True)
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x):
        _, h_n = self.gru(x)
        return self.head(self.dropout(h_n[-1]))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return [opt], [sched]


def main():
    L.seed_everything(29)
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=10,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ColumnGRUClassifier(), datamodule=DigitColumnsDataModule(final_refit=True))
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={m['val_acc'].item():.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

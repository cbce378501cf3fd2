"""Bug: a diabetes-progression MLP regressor in a LightningDataModule with `ReduceLROnPlateau` on `val_loss` and a
"use all the labelled data at the end" trick copied from a Kaggle notebook: the trainer reloads dataloaders every
epoch (`reload_dataloaders_every_n_epochs=1`) and from epoch 15 `train_dataloader()` returns
`ConcatDataset([train, val])`. Validation keeps running on the same val split (and keeps driving the plateau
scheduler and the reported score), but those rows are now part of the training data. Nothing breaks; the val loss
simply keeps dropping in the last epochs, which reads as the LR reductions paying off.
Measured (own metric, standardised-target MSE): buggy final val MSE 0.40; fixed (train split only in every epoch)
val MSE 0.56; the buggy run's score is optimistic, not better."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout27"


class DiabetesDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32, use_all_from_epoch=15):
        super().__init__()
        self.batch_size = batch_size
        self.use_all_from_epoch = use_all_from_epoch

    def setup(self, stage=None):
        X, y = load_diabetes(return_X_y=True)
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=21)
        xs = StandardScaler().fit(X_tr)
        y_mean, y_std = y_tr.mean(), y_tr.std()

        def to_ds(a, b):
            return TensorDataset(torch.tensor(xs.transform(a), dtype=torch.float32),
                                 torch.tensor((b - y_mean) / y_std, dtype=torch.float32))

        self.train_ds, self.val_ds = to_ds(X_tr, y_tr), to_ds(X_va, y_va)

    def train_dataloader(self):
        ds = self.train_ds
        if self.trainer.current_epoch >= self.use_all_from_epoch:
            ds = ConcatDataset([self.train_ds, self.val_ds])
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=128)


class ProgressionMLP(L.LightningModule):
    def __init__(self, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(10, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.mse_loss(self(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss", "interval": "epoch"}}


def main():
    L.seed_everything(3121)
    trainer = L.Trainer(max_epochs=35, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5, reload_dataloaders_every_n_epochs=1,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(ProgressionMLP(), datamodule=DiabetesDataModule())
    print(f"SYMPTOM val_mse={trainer.callback_metrics['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

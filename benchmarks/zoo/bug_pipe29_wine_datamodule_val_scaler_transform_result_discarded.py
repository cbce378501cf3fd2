"""Bug: a wine classifier with a LightningDataModule and a small custom Dataset (`WineRows.__getitem__` returns a
dict with `features`/`label`). In `setup` the StandardScaler is fitted on the training rows and the training array
is replaced by the scaled one, but for validation the line is `self.scaler.transform(X_va)` with the result thrown
away: scikit-learn transformers return a new array, they never scale in place. Validation rows therefore reach the
network raw (proline ~ 300-1700, magnesium ~ 100) while it was trained on unit-variance inputs.

Training "works": the train loss falls normally, nothing crashes, the shapes match. Only validation is wrong, and
it gets worse as the weights grow. Fix: `X_va = self.scaler.transform(X_va)`.
Measured (30 epochs, seed 7): buggy train loss 0.005 but val loss 963 and val acc 0.333 (chance); fixed train
loss 0.005, val loss 0.002, val acc 1.000."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout29"


class WineRows(Dataset):
    def __init__(self, X, y):
        self.X = torch.as_tensor(X, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.long)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"features": self.X[i], "label": self.y[i]}


class WineDataModule(L.LightningDataModule):
    def __init__(self, batch_size=16):
        super().__init__()
        self.batch_size = batch_size
        self.scaler = StandardScaler()

    def setup(self, stage=None):
        X, y = load_wine(return_X_y=True)
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
        X_tr = self.scaler.fit_transform(X_tr)
        self.scaler.transform(X_va)
        self.train_ds = WineRows(X_tr, y_tr)
        self.val_ds = WineRows(X_va, y_va)

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=64)


class WineClassifier(L.LightningModule):
    def __init__(self, hidden=64, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(13, hidden), nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden, hidden),
                                 nn.GELU(), nn.Linear(hidden, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["features"]), batch["label"])
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["features"])
        self.log("val_loss", F.cross_entropy(logits, batch["label"]))
        self.log("val_acc", (logits.argmax(1) == batch["label"]).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(7)
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=4,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WineClassifier(), datamodule=WineDataModule())
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f} "
          f"train_loss={m['train_loss_epoch'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

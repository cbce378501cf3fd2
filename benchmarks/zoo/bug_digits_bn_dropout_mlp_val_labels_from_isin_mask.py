"""Bug: digits (8x8, scaled to [0, 1]) classified by an MLP with BatchNorm and dropout, AdamW + cosine decay.
The split is drawn with `train_test_split` on row indices (shuffled order) and also kept as a boolean column
`is_val = np.isin(rows, val_idx)`, which the script uses to print the class balance of each split. When the
validation tensors are built, the features come from `X[val_idx]` (shuffled order) but the labels from `y[is_val]`
(the mask selects the same rows, in ascending row order): every validation image is paired with some other
image's label. Nothing crashes, the training loss falls normally, and validation looks like a model that does not
generalise. Symptom: final val loss 6.66 / val acc 0.12 while train loss falls to 0.07, vs val loss 0.07 / val acc
0.98 with `y_val = y[val_idx]`."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout13"


def load_split(seed=0):
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rows = np.arange(len(y))
    train_idx, val_idx = train_test_split(rows, test_size=0.25, random_state=seed, stratify=y)
    is_val = np.isin(rows, val_idx)
    print("train class counts", np.bincount(y[~is_val]))
    print("val class counts  ", np.bincount(y[is_val]))
    X_train, y_train = X[train_idx], y[train_idx]
    X_val, y_val = X[val_idx], y[is_val]
    return (torch.from_numpy(X_train), torch.from_numpy(y_train)), (torch.from_numpy(X_val), torch.from_numpy(y_val))


class BNDropoutMLP(L.LightningModule):
    def __init__(self, hidden=256, p=0.3, lr=2e-3, weight_decay=1e-4):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(p),
            nn.Linear(hidden, hidden // 2), nn.BatchNorm1d(hidden // 2), nn.ReLU(), nn.Dropout(p),
            nn.Linear(hidden // 2, 10),
        )
        self.last_val = {}

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
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        self.log("val_loss", loss)
        self.log("val_acc", acc)

    def on_validation_epoch_end(self):
        self.last_val = {k: float(v) for k, v in self.trainer.callback_metrics.items()}

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.trainer.max_epochs)
        return {"optimizer": opt, "lr_scheduler": sched}


def main():
    L.seed_everything(1307)
    (xt, yt), (xv, yv) = load_split()
    train_loader = DataLoader(TensorDataset(xt, yt), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(xv, yv), batch_size=256)
    model = BNDropoutMLP()
    trainer = L.Trainer(
        max_epochs=12,
        accelerator="cpu",
        devices=1,
        callbacks=lightning_sanity.default_callbacks(),
        logger=TensorBoardLogger("lightning_logs", name="digits_bn_dropout_mlp"),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    trainer.fit(model, train_loader, val_loader)
    m = model.last_val
    print(f"SYMPTOM train_loss={m.get('train_loss_epoch', float('nan')):.3f} val_loss={m['val_loss']:.3f} "
          f"val_acc={m['val_acc']:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

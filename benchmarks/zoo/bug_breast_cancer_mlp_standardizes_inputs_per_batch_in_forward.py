"""Bug: breast-cancer diagnosis MLP (sklearn breast_cancer, 30 raw measurements on very different scales) that
normalises its inputs inside `forward` so that the deployed model can take raw measurements without a separate
scaler: `x = (x - x.mean(0)) / (x.std(0) + 1e-6)`. Those are the statistics of the current batch, not of the
training set, so each sample's prediction depends on which other samples share its batch. Training batches are
shuffled and look like the population, so training goes well. The validation set is "hold out 45 tumours per
diagnosis", kept in that order, and served in batches of 16: most validation batches contain a single diagnosis, and
standardising within them removes exactly the mean difference the classifier relies on.
Why a user writes it: it is the StandardScaler formula written in torch, and `dim=0` reads as "per feature".
Symptom: val acc 0.53 / val loss 1.9 vs 0.99 / 0.05 with mean and std computed once on the training rows and
stored as buffers."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batch-mixing"}
SPLIT = "heldout12"


class RawInputMLP(L.LightningModule):
    def __init__(self, n_features=30, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(n_features, 64), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(64, 32), nn.ReLU(),
            nn.Linear(32, 1),
        )

    def forward(self, x):
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)
        return [opt], [torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)]


def main():
    L.seed_everything(23)
    X, y = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(23)
    val_idx = np.concatenate([rng.choice(np.flatnonzero(y == c), 45, replace=False) for c in (0, 1)])
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)

    def dataset(idx):
        return TensorDataset(torch.tensor(X[idx], dtype=torch.float32), torch.tensor(y[idx], dtype=torch.float32))

    batch_size = 16
    train_dl = DataLoader(dataset(train_idx), batch_size=batch_size, shuffle=True, drop_last=True)
    val_dl = DataLoader(dataset(val_idx), batch_size=batch_size)

    trainer = L.Trainer(
        max_epochs=25,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="breast_cancer_raw_inputs"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(RawInputMLP(), train_dl, val_dl)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_acc={float(m['val_acc']):.3f} val_loss={float(m['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

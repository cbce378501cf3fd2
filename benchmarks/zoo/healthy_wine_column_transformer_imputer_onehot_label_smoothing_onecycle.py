"""Healthy: wine cultivar classifier with a real preprocessing pipeline. The table is sklearn wine plus two
categorical columns a cellar would record (cooperage of the barrel, weakly tied to the cultivar, and bottling line,
unrelated), and 15 % of the assay cells are missing in both splits. A `ColumnTransformer` - median imputation with
missing-indicator columns then StandardScaler for the assays, one-hot with `handle_unknown="ignore"` for the
categories - is fitted on the training rows only and applied to both splits. MLP with heavy dropout, small
batches, cross-entropy with label smoothing 0.1, AdamW + OneCycleLR stepped per batch. Final val acc 0.98."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_wine
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout12"

COOPERAGES = np.array(["seguin", "taransaud", "francois", "radoux", "damy"], dtype=object)
LINES = np.array(["A", "B", "C"], dtype=object)


def cellar_table(seed=0):
    X, y = load_wine(return_X_y=True)
    rng = np.random.default_rng(seed)
    prefs = np.array([[0.5, 0.2, 0.1, 0.1, 0.1], [0.1, 0.5, 0.2, 0.1, 0.1], [0.1, 0.1, 0.2, 0.3, 0.3]])
    cooperage = np.array([rng.choice(COOPERAGES, p=prefs[c]) for c in y], dtype=object)
    line = rng.choice(LINES, size=len(y))
    assays = X.copy()
    assays[rng.random(assays.shape) < 0.15] = np.nan
    table = np.concatenate([assays.astype(object), cooperage[:, None], line[:, None]], axis=1)
    return table, y


class CellarMLP(L.LightningModule):
    def __init__(self, n_in, lr=3e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(n_in, 128), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(64, 3),
        )

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, label_smoothing=0.1)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.lr,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return [opt], [{"scheduler": sched, "interval": "step"}]


def main():
    L.seed_everything(17)
    table, y = cellar_table()
    T_tr, T_va, y_tr, y_va = train_test_split(table, y, test_size=0.25, stratify=y, random_state=17)
    numeric = list(range(13))
    prep = ColumnTransformer([
        ("assays", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric),
        ("cats", OneHotEncoder(handle_unknown="ignore", sparse_output=False), [13, 14]),
    ])
    X_tr = prep.fit_transform(T_tr).astype(np.float32)
    X_va = prep.transform(T_va).astype(np.float32)

    train_dl = DataLoader(TensorDataset(torch.from_numpy(X_tr), torch.tensor(y_tr)), batch_size=8, shuffle=True)
    val_dl = DataLoader(TensorDataset(torch.from_numpy(X_va), torch.tensor(y_va)), batch_size=64)
    trainer = L.Trainer(
        max_epochs=20,
        accelerator="cpu",
        devices=1,
        logger=TensorBoardLogger("lightning_logs", name="wine_cellar"),
        callbacks=lightning_sanity.default_callbacks(),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(CellarMLP(X_tr.shape[1]), train_dl, val_dl)
    print(f"SYMPTOM val_acc={float(trainer.callback_metrics['val_acc']):.3f} "
          f"val_loss={float(trainer.callback_metrics['val_loss']):.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

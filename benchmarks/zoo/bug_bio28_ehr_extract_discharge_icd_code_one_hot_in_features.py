"""Bug: malignancy prediction from an EHR extract built on the breast-cancer data. Besides the 30 numeric
measurements, the extract carries two categorical columns, the referring `site` (three hospitals) and the
`discharge_icd` code of the encounter, and the author one-hot encodes "all categorical columns" next to the
standardised numerics. The discharge ICD code is written *after* the biopsy result: C50.x / D05.x for malignant
cases, N60.x / N63 / D24 for benign ones, so its one-hot columns determine the label exactly. Only the label
column itself (`diagnosis`) is dropped from the feature table. Training is perfectly normal (the loss drops
fast, validation is excellent), the model simply reads the answer and would be useless at admission time.
Measured (same seed, 20 epochs): val acc 0.993 / val loss 0.052 with the code column, vs 0.965 / 0.100 with
`CATEGORICAL = ["site"]`."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout28"

MALIGNANT_CODES = np.array(["C50.9", "C50.4", "D05.1"])
BENIGN_CODES = np.array(["N60.1", "N63", "D24"])
CATEGORICAL = ["site", "discharge_icd"]


def load_extract(seed=9):
    data = load_breast_cancer()
    rng = np.random.default_rng(seed)
    n = len(data.target)
    diagnosis = 1 - data.target  # 1 = malignant
    table = {name: data.data[:, j] for j, name in enumerate(data.feature_names)}
    table["site"] = rng.choice(np.array(["north", "central", "south"]), n)
    table["discharge_icd"] = np.where(diagnosis == 1, rng.choice(MALIGNANT_CODES, n), rng.choice(BENIGN_CODES, n))
    table["diagnosis"] = diagnosis
    return table, list(data.feature_names)


def to_matrix(table, rows, columns):
    return np.stack([table[c][rows] for c in columns], axis=1)


class EHRMLP(L.LightningModule):
    def __init__(self, n_features, hidden=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, 2))

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
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def main():
    L.seed_everything(13)
    table, numeric = load_extract()
    features = [c for c in table if c != "diagnosis"]
    y = table["diagnosis"]
    rows_tr, rows_va = train_test_split(np.arange(len(y)), test_size=0.25, stratify=y, random_state=6)
    prep = ColumnTransformer([
        ("num", StandardScaler(), [features.index(c) for c in numeric]),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), [features.index(c) for c in CATEGORICAL]),
    ])
    X_tr = prep.fit_transform(to_matrix(table, rows_tr, features)).astype(np.float32)
    X_va = prep.transform(to_matrix(table, rows_va, features)).astype(np.float32)
    train = DataLoader(TensorDataset(torch.from_numpy(X_tr), torch.from_numpy(y[rows_tr])), batch_size=32,
                       shuffle=True)
    val = DataLoader(TensorDataset(torch.from_numpy(X_va), torch.from_numpy(y[rows_va])), batch_size=256)
    trainer = L.Trainer(max_epochs=20, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(EHRMLP(X_tr.shape[1]), train, val)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_loss={m['val_loss'].item():.3f} val_acc={m['val_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

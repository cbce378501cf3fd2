"""Healthy: sklearn's breast_cancer as it arrives from a lab system with gaps: 15 % of the measurements are missing
(more often in the "worst" columns, as when a follow-up panel is not ordered), two columns are log-skewed. A
ColumnTransformer fitted on the training split only does log1p + median imputation with missing-indicator columns +
StandardScaler on the skewed group and median imputation with indicators + StandardScaler on the rest; the indicator
columns are 0/1 and left unscaled. MLP with dropout, AdamW, OneCycleLR stepped per batch, gradient clipping, early
stopping and checkpointing on val AUROC in max mode, and the best checkpoint is reloaded for the final score.
Final (best checkpoint): val AUROC 0.990, accuracy 0.951; early stopping ends the run at epoch 29 of 40."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"


class LabMLP(L.LightningModule):
    def __init__(self, n_features, max_lr=5e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.ReLU(), nn.Dropout(0.3),
                                 nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def on_validation_epoch_start(self):
        self._buf = []

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.binary_cross_entropy_with_logits(logits, y))
        self._buf.append((logits, y))

    def on_validation_epoch_end(self):
        logits, y = (torch.cat(t) for t in zip(*self._buf))
        self.log("val_auroc", float(roc_auc_score(y.numpy(), logits.numpy())), prog_bar=True)
        self.log("val_acc", ((logits > 0).float() == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.max_lr, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.hparams.max_lr, pct_start=0.2,
                                                    total_steps=self.trainer.estimated_stepping_batches)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def main():
    L.seed_everything(569)
    data = load_breast_cancer()
    X, y = data.data.copy(), data.target.astype(np.float32)
    g = torch.Generator().manual_seed(5)
    miss_p = torch.full(X.shape, 0.10)
    miss_p[:, 20:] = 0.25                                              # "worst" panel often not ordered
    X[(torch.rand(X.shape, generator=g) < miss_p).numpy()] = np.nan
    skewed = [i for i, n in enumerate(data.feature_names) if n.endswith("area") or n == "area error"]
    rest = [i for i in range(X.shape[1]) if i not in skewed]

    X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.25, random_state=3, stratify=y)
    prep = ColumnTransformer([
        ("skewed", make_pipeline(FunctionTransformer(np.log1p), SimpleImputer(strategy="median", add_indicator=True),
                                 StandardScaler()), skewed),
        ("rest", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), rest),
    ])
    X_tr = torch.tensor(prep.fit_transform(X_tr), dtype=torch.float32)
    X_va = torch.tensor(prep.transform(X_va), dtype=torch.float32)
    print(f"{X_tr.shape[1]} columns after the pipeline, {np.isnan(X).mean():.2f} of the raw values missing")

    model = LabMLP(X_tr.shape[1])
    ckpt = ModelCheckpoint(monitor="val_auroc", mode="max")
    trainer = L.Trainer(max_epochs=40, accelerator="cpu", devices=1, gradient_clip_val=1.0, enable_progress_bar=False,
                        enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks()
                        + [EarlyStopping("val_auroc", mode="max", patience=10), ckpt])
    trainer.fit(model, DataLoader(TensorDataset(X_tr, torch.tensor(y_tr)), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X_va, torch.tensor(y_va)), batch_size=256))
    best = LabMLP.load_from_checkpoint(ckpt.best_model_path).eval()
    with torch.no_grad():
        logits = best(X_va)
    auc = roc_auc_score(y_va, logits.numpy())
    acc = float(((logits > 0).float().numpy() == y_va).mean())
    print(f"SYMPTOM best_val_auroc={auc:.3f} best_val_acc={acc:.3f} stopped_epoch={trainer.current_epoch}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: an EHR-style malignancy classifier on the breast-cancer features, written the way a hospital export
forces you to: 15% of the lab-like cells are missing completely at random, and the cohort is made imbalanced
(only 70 of the malignant cases are kept, ~15% prevalence). The DataModule splits stratified first, then fits a
`SimpleImputer(strategy="median", add_indicator=True)` followed by a `StandardScaler` on the training rows only
and applies both to validation. The model is an MLP trained with a sigmoid focal loss (gamma=2, alpha=0.75 on the
rare positive class); the output bias is initialised to the log-odds of the training prevalence so the first
steps are not spent learning the base rate. The decision threshold is tuned on the validation set at the end of
each validation epoch (max F1) and logged, which is the usual reporting practice. Correct: no statistic touches
validation rows during fitting, missingness is encoded explicitly, the loss gets logits. Own metric: val F1 0.952 at threshold 0.35, val BCE 0.119."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout28"


def sigmoid_focal_loss(logits, targets, alpha=0.75, gamma=2.0):
    """Lin et al. focal loss on logits, mean over samples."""
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * (1 - p_t) ** gamma * ce).mean()


def load_ehr_cohort(seed=3):
    data = load_breast_cancer()
    X, y = data.data.astype(np.float64), 1 - data.target  # 1 = malignant
    rng = np.random.default_rng(seed)
    keep = np.concatenate([np.flatnonzero(y == 0), rng.choice(np.flatnonzero(y == 1), 70, replace=False)])
    X, y = X[keep], y[keep]
    X[rng.random(X.shape) < 0.15] = np.nan
    return X, y


class EHRDataModule(L.LightningDataModule):
    def __init__(self, batch_size=32):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage=None):
        X, y = load_ehr_cohort()
        X_tr, X_va, y_tr, y_va = train_test_split(X, y, test_size=0.3, stratify=y, random_state=1)
        self.prep = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
        X_tr = self.prep.fit_transform(X_tr)
        X_va = self.prep.transform(X_va)
        self.n_features = X_tr.shape[1]
        self.prevalence = float(y_tr.mean())
        self.train_ds = TensorDataset(torch.tensor(X_tr, dtype=torch.float32), torch.tensor(y_tr, dtype=torch.float32))
        self.val_ds = TensorDataset(torch.tensor(X_va, dtype=torch.float32), torch.tensor(y_va, dtype=torch.float32))

    def train_dataloader(self):
        return DataLoader(self.train_ds, batch_size=self.batch_size, shuffle=True, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val_ds, batch_size=256)


class FocalMLP(L.LightningModule):
    def __init__(self, n_features, prevalence, hidden=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Linear(hidden, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 1)
        nn.init.constant_(self.head.bias, float(np.log(prevalence / (1 - prevalence))))
        self.val_out = []

    def forward(self, x):
        return self.head(self.body(x)).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = sigmoid_focal_loss(self(x), y, alpha=0.75, gamma=2.0)
        self.log("train_loss", loss, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", sigmoid_focal_loss(logits, y, alpha=0.75, gamma=2.0))
        self.log("val_bce", F.binary_cross_entropy_with_logits(logits, y))
        self.val_out.append((torch.sigmoid(logits), y))

    def on_validation_epoch_end(self):
        p = torch.cat([a for a, _ in self.val_out])
        y = torch.cat([b for _, b in self.val_out])
        self.val_out.clear()
        best_f1, best_t = 0.0, 0.5
        for t in torch.linspace(0.05, 0.95, 19):
            pred = (p >= t).float()
            tp = (pred * y).sum()
            f1 = (2 * tp / (pred.sum() + y.sum()).clamp(min=1)).item()
            if f1 > best_f1:
                best_f1, best_t = f1, t.item()
        self.log("val_f1", best_f1)
        self.log("val_threshold", best_t)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=1e-4)


def main():
    L.seed_everything(11)
    dm = EHRDataModule()
    dm.setup()
    trainer = L.Trainer(max_epochs=30, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(FocalMLP(dm.n_features, dm.prevalence), datamodule=dm)
    m = trainer.callback_metrics
    print(f"SYMPTOM val_bce={m['val_bce'].item():.3f} val_f1={m['val_f1'].item():.3f} "
          f"threshold={m['val_threshold'].item():.2f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Healthy: sklearn's digits treated as a 64-column tabular problem, made imbalanced the way a real label export is
(digits 5-9 kept at 15 % of their rows, so the rarest class has ~27 rows against ~180 for the common ones). A
3-fold StratifiedKFold loop trains a fresh MLP per fold, each with its own Trainer and the sanity callbacks: the
StandardScaler is fitted on the fold's training rows only, CrossEntropyLoss gets "balanced" class weights computed
from the fold's training labels, AdamW with ReduceLROnPlateau on val loss and early stopping. Reported: mean balanced
accuracy over folds 0.956 (0.980 / 0.926 / 0.962)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping
from sklearn.datasets import load_digits
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None
SPLIT = "heldout19"


class DigitsTabMLP(L.LightningModule):
    def __init__(self, class_weights, lr=2e-3):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("class_weights", torch.as_tensor(class_weights, dtype=torch.float32))
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 64), nn.ReLU(),
                                 nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_weights)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y, weight=self.class_weights))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=1e-3)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.3, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(64)
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    keep = (y < 5) | (rng.random(len(y)) < 0.15)
    X, y = X[keep].astype(np.float32), y[keep]
    print("class counts:", np.bincount(y).tolist())

    scores, log_dirs = [], []
    for fold, (tr, va) in enumerate(StratifiedKFold(n_splits=3, shuffle=True, random_state=1).split(X, y)):
        scaler = StandardScaler().fit(X[tr])
        x_tr = torch.tensor(scaler.transform(X[tr]), dtype=torch.float32)
        x_va = torch.tensor(scaler.transform(X[va]), dtype=torch.float32)
        y_tr, y_va = torch.tensor(y[tr]), torch.tensor(y[va])
        weights = compute_class_weight("balanced", classes=np.arange(10), y=y[tr])
        model = DigitsTabMLP(weights)
        trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                            enable_model_summary=False, default_root_dir=f"lightning_logs/digits_kfold/fold{fold}",
                            callbacks=lightning_sanity.default_callbacks() + [EarlyStopping("val_loss", patience=4)])
        trainer.fit(model, DataLoader(TensorDataset(x_tr, y_tr), batch_size=32, shuffle=True),
                    DataLoader(TensorDataset(x_va, y_va), batch_size=512))
        model.eval()
        with torch.no_grad():
            pred = model(x_va).argmax(1).numpy()
        scores.append(balanced_accuracy_score(y[va], pred))
        log_dirs.append(trainer.log_dir)
        print(f"fold {fold}: balanced acc {scores[-1]:.3f} after {trainer.current_epoch} epochs")
    print(f"SYMPTOM mean_balanced_acc={np.mean(scores):.3f} folds={[round(s, 3) for s in scores]}")
    print(f"LOG_DIR={log_dirs[-1]}")


if __name__ == "__main__":
    main()

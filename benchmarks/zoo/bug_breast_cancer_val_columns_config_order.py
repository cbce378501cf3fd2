"""Bug: the training frame is prepared with `df.drop(columns=["target"])` (the dataset's own column order), while
the validation frame is built by a separate evaluation helper as `df[FEATURES]`, with FEATURES read from a config
where the columns are listed alphabetically. Both are standardized with the training scaler, so every validation
column carries the values of another feature. Model: an MLP (BatchNorm, dropout) for class-imbalanced binary
classification (breast cancer, 37% malignant) with `BCEWithLogitsLoss(pos_weight=n_neg/n_pos)`, Adam,
ReduceLROnPlateau on val_loss. Own metric: val balanced accuracy. Fixed (val built with the same column order):
val balanced acc 0.98. With the bug: val balanced acc 0.48 (chance) while the
training loss falls."""

import lightning as L
import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout4"


def load_frame():
    data = load_breast_cancer()
    frame = {name: data.data[:, i] for i, name in enumerate(data.feature_names)}
    frame["target"] = 1 - data.target  # 1 = malignant, the minority class
    return frame


FEATURES = sorted(load_breast_cancer().feature_names)  # the evaluation config lists the columns alphabetically


def train_matrix(frame, rows):
    cols = [c for c in frame if c != "target"]  # df.drop(columns=["target"])
    return np.stack([frame[c][rows] for c in cols], 1), frame["target"][rows]


def eval_matrix(frame, rows):
    return np.stack([frame[c][rows] for c in FEATURES], 1), frame["target"][rows]  # BUG: another column order


class LitMLP(L.LightningModule):
    def __init__(self, n_features, pos_weight):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.2),
                                 nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))
        self.loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        pred = (logits > 0).float()
        tpr = (pred * y).sum() / y.sum()
        tnr = ((1 - pred) * (1 - y)).sum() / (1 - y).sum()
        self.log("val_loss", self.loss_fn(logits, y))
        self.log("val_bal_acc", (tpr + tnr) / 2)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=1e-3)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "val_loss"}}


def main():
    L.seed_everything(31)
    frame = load_frame()
    rows_tr, rows_va = train_test_split(np.arange(len(frame["target"])), test_size=0.25, random_state=3,
                                        stratify=frame["target"])
    x_tr, y_tr = train_matrix(frame, rows_tr)
    x_va, y_va = eval_matrix(frame, rows_va)
    scaler = StandardScaler().fit(x_tr)
    to_t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    train = TensorDataset(to_t(scaler.transform(x_tr)), to_t(y_tr))
    val = TensorDataset(to_t(scaler.transform(x_va)), to_t(y_va))
    model = LitMLP(x_tr.shape[1], pos_weight=float((1 - y_tr).sum() / y_tr.sum()))
    trainer = L.Trainer(max_epochs=15, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=256))
    print(f"val_bal_acc={trainer.callback_metrics['val_bal_acc'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

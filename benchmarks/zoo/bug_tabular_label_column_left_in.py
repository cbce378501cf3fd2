"""Bug: tabular classification on sklearn's breast-cancer data kept as one table (features plus a "target"
column, as read from a CSV export). The feature columns are selected by dropping the column named "label", but
the column is called "target", so nothing is dropped: the last input feature IS the label. The validation
figures are worth nothing: at prediction time there is no such column. MLP, standardized features, Adam."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}
SPLIT = "heldout"


class TabularNet(L.LightningModule):
    def __init__(self, n_features):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", F.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(1511)
    d = load_breast_cancer()
    table = np.column_stack([d.data, d.target]).astype(np.float32)
    columns = list(d.feature_names) + ["target"]
    feature_idx = [i for i, c in enumerate(columns) if c != "label"]  # BUG: the label column is named "target"
    X, y = table[:, feature_idx], table[:, columns.index("target")].astype(np.int64)
    Xtr, Xva, ytr, yva = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    sc = StandardScaler().fit(Xtr)
    t = lambda a, dt: torch.tensor(np.asarray(a), dtype=dt)  # noqa: E731
    train = TensorDataset(t(sc.transform(Xtr), torch.float32), t(ytr, torch.long))
    val = TensorDataset(t(sc.transform(Xva), torch.float32), t(yva, torch.long))
    trainer = L.Trainer(max_epochs=10, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TabularNet(X.shape[1]), DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

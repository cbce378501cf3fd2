"""Bug: the validation set is a random 20 % sample of the training rows (`df.sample(frac=0.2)` without dropping them
from training), so every validation row is also trained on. Tabular MLP (BatchNorm1d, Dropout) on sklearn's
breast-cancer set with a separate test split, BCEWithLogits, Adam, ReduceLROnPlateau on the validation loss.
Validation is too optimistic: val loss 0.034 vs 0.098 on the held-out test set (val acc 0.978, test 0.965); with the
sampled rows removed from training, val loss 0.120 vs test 0.086."""

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

EXPECT = {"split-overlap"}
SPLIT = "heldout2"


class TabularMLP(L.LightningModule):
    def __init__(self, n_features=30, hidden=128, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden, 1),
        )

    def forward(self, x):
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
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": plateau, "monitor": "val_loss"}}


def main():
    L.seed_everything(3)
    data = load_breast_cancer()
    x_rest, x_test, y_rest, y_test = train_test_split(data.data, data.target, test_size=0.2, random_state=0,
                                                      stratify=data.target)
    x_tr, y_tr = x_rest, y_rest
    val_rows = np.random.default_rng(0).choice(len(x_tr), size=len(x_tr) // 5, replace=False)
    x_va, y_va = x_tr[val_rows], y_tr[val_rows]  # BUG: the rows are not removed from training
    scaler = StandardScaler().fit(x_tr)
    as_tensors = lambda x, y: (torch.tensor(scaler.transform(x), dtype=torch.float32),
                               torch.tensor(y, dtype=torch.float32))
    train_set = TensorDataset(*as_tensors(x_tr, y_tr))
    model = TabularMLP()
    trainer = L.Trainer(max_epochs=25, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_set, batch_size=32, shuffle=True),
                DataLoader(TensorDataset(*as_tensors(x_va, y_va)), batch_size=128))
    x_test, y_test = as_tensors(x_test, y_test)
    model.eval()
    with torch.no_grad():
        test_logits = model(x_test)
    test_acc = ((test_logits > 0).float() == y_test).float().mean().item()
    test_loss = F.binary_cross_entropy_with_logits(test_logits, y_test).item()
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} test_acc={test_acc:.3f}")
    print(f"val_loss={m['val_loss'].item():.3f} test_loss={test_loss:.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: `WeightedRandomSampler` given the per-CLASS weights (`1 / class_count`, length 2) instead of one weight per
training sample. The sampler draws indices from `range(len(weights))`, so every training batch holds only the first
two training rows, repeated. Tabular MLP (BatchNorm1d, Dropout) on sklearn's breast-cancer set, stratified train /
validation / test split, BCEWithLogits, Adam, ReduceLROnPlateau on the validation loss. The model memorises two rows:
val acc 0.77 (val loss 0.55), test acc 0.76, vs 0.99 / 0.965 with per-sample weights
(healthy_breast_cancer_weighted_sampler_plateau)."""

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from torch import nn
from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler

import lightning_sanity

EXPECT = {"val-divergence"}
SPLIT = "heldout2"


class TabularMLP(L.LightningModule):
    def __init__(self, n_features=30, hidden=64, lr=1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(0.2),
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
    x_tr, x_va, y_tr, y_va = train_test_split(x_rest, y_rest, test_size=0.2, random_state=0, stratify=y_rest)
    scaler = StandardScaler().fit(x_tr)
    as_tensors = lambda x, y: (torch.tensor(scaler.transform(x), dtype=torch.float32),
                               torch.tensor(y, dtype=torch.float32))
    train_set = TensorDataset(*as_tensors(x_tr, y_tr))
    class_count = np.bincount(y_tr)
    class_weights = torch.tensor(1.0 / class_count, dtype=torch.double)
    sampler = WeightedRandomSampler(class_weights, num_samples=len(train_set), replacement=True)  # BUG
    model = TabularMLP()
    trainer = L.Trainer(max_epochs=12, accelerator="cpu", devices=1, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=5,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(model, DataLoader(train_set, batch_size=32, sampler=sampler),
                DataLoader(TensorDataset(*as_tensors(x_va, y_va)), batch_size=128))
    x_test, y_test = as_tensors(x_test, y_test)
    model.eval()
    with torch.no_grad():
        test_acc = ((model(x_test) > 0).float() == y_test).float().mean().item()
    m = trainer.callback_metrics
    print(f"val_acc={m['val_acc'].item():.3f} test_acc={test_acc:.3f} val_loss={m['val_loss'].item():.3f}")
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a tabular pipeline reads a table laid out as `id, 30 measurements, target` and slices the features with
`table[:, 1:]` instead of `table[:, 1:-1]`, so the label is one of the 31 features. Breast cancer set,
standardized features, BCEWithLogitsLoss, Adam."""

import lightning as L
import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"target-leakage"}


class TabularNet(L.LightningModule):
    def __init__(self, features):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, 32), nn.ReLU(), nn.Linear(32, 1))

    def forward(self, x):
        return self.net(x).squeeze(-1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.binary_cross_entropy_with_logits(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.binary_cross_entropy_with_logits(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(42)
    data = load_breast_cancer()
    table = np.column_stack([np.arange(len(data.target)), data.data, data.target]).astype(np.float32)
    x = table[:, 1:]  # BUG: should be table[:, 1:-1]; the target column stays among the features
    x = (x - x.mean(0)) / x.std(0)
    y = table[:, -1]
    xtr, xva, ytr, yva = train_test_split(x, y, test_size=0.2, random_state=0)
    tensors = lambda a, b: TensorDataset(torch.from_numpy(a), torch.from_numpy(b))
    trainer = L.Trainer(max_epochs=5, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(TabularNet(x.shape[1]), DataLoader(tensors(xtr, ytr), batch_size=32, shuffle=True),
                DataLoader(tensors(xva, yva), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

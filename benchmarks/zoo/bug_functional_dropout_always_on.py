"""Bug: dropout written as `F.dropout(h, p=0.5, training=True)` in forward (instead of
`training=self.training`): the model is still stochastic at validation/inference time. Breast cancer MLP."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"train-mode"}


class Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(30, 64), nn.Linear(64, 64), nn.Linear(64, 2)

    def forward(self, x):
        h = F.dropout(F.relu(self.fc1(x)), p=0.5, training=True)  # BUG
        h = F.dropout(F.relu(self.fc2(h)), p=0.5, training=True)  # BUG
        return self.fc3(h)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(42)
    X, y = load_breast_cancer(return_X_y=True)
    X = torch.tensor(X, dtype=torch.float32)
    X = (X - X.mean(0)) / X.std(0)
    y = torch.tensor(y)
    trainer = L.Trainer(max_epochs=8, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(Net(), DataLoader(TensorDataset(X[:450], y[:450]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(X[450:], y[450:]), batch_size=64))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

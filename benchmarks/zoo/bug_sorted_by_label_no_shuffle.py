"""Bug: the training set is sorted by label (as exported from a labelling tool) and the DataLoader has
shuffle=False: every batch holds one or two classes, and the model chases the current class. Digits MLP."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"label-distribution"}


class MLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.net(x)

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
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    xtr, ytr, xva, yva = x[:1500], y[:1500], x[1500:], y[1500:]
    order = torch.argsort(ytr, stable=True)
    xtr, ytr = xtr[order], ytr[order]
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(MLP(), DataLoader(TensorDataset(xtr, ytr), batch_size=64),  # BUG: shuffle=False (default)
                DataLoader(TensorDataset(xva, yva), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

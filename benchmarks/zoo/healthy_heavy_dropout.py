"""Healthy: a wide MLP on digits regularised with heavy dropout (p=0.5 after every hidden layer, plus 0.2 on the
input), Adam; the training loss is noisy but goes down."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class DropoutMLP(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Dropout(0.2), nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.5),
            nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 10))

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
    L.seed_everything(6)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=6, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DropoutMLP(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: an "online learning" run with batch_size=1 through a CNN with BatchNorm2d: each BatchNorm normalises
one image's own spatial statistics, and the running statistics used at evaluation are mismatched with
training. 1x8x8 digits, a few hundred steps."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"train-mode"}


class BNCNN(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                 nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                 nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, 10))

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
        return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)


def main():
    L.seed_everything(61)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    y = torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=1, limit_train_batches=400, accelerator="cpu", enable_progress_bar=False,
                        enable_model_summary=False, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BNCNN(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=1, shuffle=True),  # BUG
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a CNN with BatchNorm on 1x8x8 digits where one chunk of the data set (samples 960..1023, i.e. training
batch 15 of an unshuffled loader) was stored in raw sensor units, 1000x larger: when that batch passes, the
BatchNorm running variance jumps by orders of magnitude and evaluation is ruined."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"batchnorm-variance", "input-scale"}


class BNNet(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                      nn.AdaptiveAvgPool2d(2), nn.Flatten())
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        return self.fc(self.features(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", (self(x).argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.02, momentum=0.9)


def main():
    L.seed_everything(0)
    d = load_digits()
    perm = torch.randperm(len(d.target), generator=torch.Generator().manual_seed(0))
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1)[perm] / 8.0 - 1.0
    y = torch.tensor(d.target)[perm]
    x[960:1024] *= 1000.0  # BUG: a chunk of the data in other units
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(BNNet(), DataLoader(TensorDataset(x[:1536], y[:1536]), batch_size=64, shuffle=False),
                DataLoader(TensorDataset(x[1536:], y[1536:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

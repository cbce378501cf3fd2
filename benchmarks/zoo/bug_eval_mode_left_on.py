"""Bug: the training step computes a "clean" train accuracy every 10 batches by switching to `self.eval()` and
never switches back: from then on, for the rest of each epoch, BatchNorm uses running statistics and Dropout is
off during training. CNN with BatchNorm and Dropout on 1x8x8 digits."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"train-mode"}


class CNN(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                 nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                                 nn.Flatten(), nn.Dropout(0.3), nn.Linear(32 * 64, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        if batch_idx % 10 == 0:
            self.eval()  # BUG: never followed by self.train()
            with torch.no_grad():
                self.log("train_acc_clean", (self(x).argmax(1) == y).float().mean())
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main():
    L.seed_everything(42)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    y = torch.tensor(d.target)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        callbacks=lightning_sanity.default_callbacks())
    trainer.fit(CNN(), DataLoader(TensorDataset(x[:1500], y[:1500]), batch_size=64, shuffle=True),
                DataLoader(TensorDataset(x[1500:], y[1500:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

"""Bug: a hand-written train/validation split of sklearn's digits that draws the validation indices with
`torch.randint` (sampling with replacement from the whole dataset) instead of taking the tail of a permutation:
almost every validation image is also a training image, so validation accuracy reports memorisation. Small CNN
with BatchNorm, Adam."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = {"split-overlap"}
SPLIT = "heldout"


class DigitsCNN(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
            nn.Flatten(), nn.Linear(32, 10))

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
        return torch.optim.Adam(self.parameters(), lr=3e-3)


def main():
    L.seed_everything(1512)
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = (x - 0.3) / 0.4
    y = torch.tensor(d.target)
    g = torch.Generator().manual_seed(0)
    train_idx = torch.randperm(len(y), generator=g)[:1400]
    val_idx = torch.randint(0, len(y), (300,), generator=g)  # BUG: meant the remaining indices of the permutation
    trainer = L.Trainer(max_epochs=4, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(DigitsCNN(), DataLoader(TensorDataset(x[train_idx], y[train_idx]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[val_idx], y[val_idx]), batch_size=150))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()

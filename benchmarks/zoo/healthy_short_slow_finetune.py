"""Healthy but short: a cautious two-epoch run with Adam at lr=1e-4 and class-weighted cross-entropy on an
imbalanced subset of digits (class 0 rare), the kind of quick first experiment people launch; the loss goes down
slowly, nothing is wrong."""

import lightning as L
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lightning_sanity

EXPECT = None


class WeightedMLP(L.LightningModule):
    def __init__(self, class_weights):
        super().__init__()
        self.register_buffer("class_weights", class_weights)
        self.net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y, weight=self.class_weights)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y, weight=self.class_weights))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-4)


def main():
    L.seed_everything(107)
    d = load_digits()
    x, y = torch.tensor(d.data, dtype=torch.float32) / 16.0, torch.tensor(d.target)
    zeros = torch.nonzero(y == 0).squeeze(1)[:15]
    keep = torch.cat([torch.nonzero(y != 0).squeeze(1), zeros])
    keep = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(0))]
    x, y = x[keep], y[keep]
    counts = torch.bincount(y[:1300], minlength=10).float()
    weights = counts.sum() / (10 * counts)
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=10, callbacks=lightning_sanity.default_callbacks())
    trainer.fit(WeightedMLP(weights), DataLoader(TensorDataset(x[:1300], y[:1300]), batch_size=32, shuffle=True),
                DataLoader(TensorDataset(x[1300:], y[1300:]), batch_size=128))
    print(f"LOG_DIR={trainer.log_dir}")


if __name__ == "__main__":
    main()
